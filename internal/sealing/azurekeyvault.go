//go:build azurekeyvault

package sealing

// azurekeyvault:// KEKs, in a weir built with -tags azurekeyvault: the
// driver and Azure's client libraries add about 2 MB, which the default
// build (and its container image, kept under 60 MB) leaves out.
import _ "gocloud.dev/secrets/azurekeyvault"
