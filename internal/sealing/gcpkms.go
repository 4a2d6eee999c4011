//go:build gcpkms

package sealing

// gcpkms:// KEKs, in a weir built with -tags gcpkms: the driver and Google
// Cloud's client libraries add about 3 MB, which the default build (and
// its container image, kept under 60 MB) leaves out.
import _ "gocloud.dev/secrets/gcpkms"
