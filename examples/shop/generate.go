package shop

// The types, event registries and deciders of the order, payment and
// shipping packages are generated from eventmodel.yaml by muninn gen go
// (their *_gen.go files); their rules are the hand-written rules.go files.
// Regenerate after changing the model with go generate ./examples/shop;
// gen/golang's TestShopInSync fails while they differ.

//go:generate go run ../../cmd/muninn gen go --out . --service --no-main eventmodel.yaml
