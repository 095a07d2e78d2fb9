module tessera.dev/plugins/require-labels

go 1.24

require tessera.dev/sdk v0.0.0

replace tessera.dev/sdk => ../../../guest-sdk/go
