module tessera.dev/sdk

go 1.24
