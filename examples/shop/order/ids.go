package order

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/muninn-es/muninn/service"
)

// MaxIDLen is the longest order, customer or SKU ID, in bytes.
const MaxIDLen = 128

// FieldError is a bad value of one field of a request or command: Field
// names it as the API spells it ("customer_id", "items[1].quantity").
// Commands fail with a *command.Error of kind InvalidArgument wrapping one,
// so a transport can report the field (errors.As).
type FieldError struct {
	Field, Msg string
}

// Error returns "field: msg".
func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Unwrap returns the error as a *service.FieldViolation, so that the
// service's status of an error wrapping a FieldError (service.Status, as
// the generated servers send it) is InvalidArgument with a
// google.rpc.BadRequest naming Field.
func (e *FieldError) Unwrap() error {
	return &service.FieldViolation{Field: e.Field, Description: e.Msg}
}

// ValidateID checks an ID (of an order, a customer or a SKU) given as field:
// 1 to MaxIDLen bytes of valid UTF-8, made of letters of any script, digits,
// marks and '-', '_', '.', '@', ':', and neither "." nor "..". So an ID is
// safe in a URL path, a file name and a log line: no '/', '\', spaces or
// control characters. The error is a *FieldError.
func ValidateID(field, id string) error {
	bad := func(format string, args ...any) error {
		return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case id == "":
		return bad("is required")
	case len(id) > MaxIDLen:
		return bad("is %d bytes long, at most %d allowed", len(id), MaxIDLen)
	case !utf8.ValidString(id):
		return bad("is not valid UTF-8")
	case id == "." || id == ".." || strings.Contains(id, ".."):
		return bad("%q may not contain \"..\"", id)
	}
	for _, r := range id {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) || strings.ContainsRune("-_.@:", r) {
			continue
		}
		return bad("has the character %q; only letters, digits and - _ . @ : are allowed", r)
	}
	return nil
}
