module github.com/ovl-io/ovl/bindings/go

go 1.21
