package codec_test

import (
	"fmt"

	"github.com/muninn-es/muninn/codec"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func Example() {
	type placed struct {
		OrderID string `json:"order_id"`
	}
	c := codec.JSON[placed]()
	b, _ := c.Encode(placed{OrderID: "o-1"})
	back, _ := c.Decode(b)
	fmt.Println(string(b), back.OrderID)

	n, _ := codec.Int64().Encode(258)
	fmt.Printf("% x\n", n)

	pc := codec.Proto[*wrapperspb.StringValue]()
	pb, _ := pc.Encode(wrapperspb.String("hi"))
	msg, _ := pc.Decode(pb)
	fmt.Println(msg.GetValue())
	// Output:
	// {"order_id":"o-1"} o-1
	// 00 00 00 00 00 00 01 02
	// hi
}

// A Format encodes values of any type; Typed makes the Codec of one type
// out of it.
func ExampleTyped() {
	c := codec.Typed[*wrapperspb.Int64Value](codec.JSONFormat)
	b, _ := c.Encode(wrapperspb.Int64(42))
	v, _ := c.Decode(b)
	fmt.Println(string(b), v.GetValue())
	// Output: "42" 42
}
