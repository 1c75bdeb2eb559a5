// SPDX-License-Identifier: MIT

//go:build !unix

package mqtt

import "net"

// newRawReader returns nil: here every client reads through a
// bufio.Reader (posfleet patch, see packetReader).
func newRawReader(net.Conn, int) packetReader { return nil }
