// Package firmwareclient is the library a payment terminal's firmware links
// to report to posfleet over MQTT (PROTOCOL.md §1): heartbeats, faults,
// inventory and transactions, and to carry out the server's commands
// (firmware update, reboot).
//
// A firmware engineer needs four things:
//
//	c, err := firmwareclient.New(firmwareclient.Config{
//		Broker: "ssl://posfleet.example.com:8883",
//		Tenant: "acme", Terminal: "T0001", Secret: secret,
//		StoreDir:  "/data/posfleet",
//		Inventory: posfleet.Inventory{Model: "A920", Firmware: "2.4.1"},
//		Heartbeat: readSensors,
//		Flash:     installPackage,
//	})
//	go c.Run(ctx)
//	c.ReportTransaction(ctx, posfleet.Transaction{ID: "S-42", Type: "sale", ...})
//	c.Close()
//
// Store-and-forward: every report is first written to an outbox on disk
// (a bbolt file in StoreDir) together with its seq, in one atomic write, so
// seqs survive a reboot with neither gaps nor reuse. The outbox is sent in
// seq order whenever the terminal is connected, and a message leaves it
// only when the broker acknowledged it (PUBACK), which the server sends once
// the message is durable. Whatever is reported while offline, before the
// first connection, or before a restart is therefore delivered after
// reconnecting; the server drops the rare duplicate by seq. Transactions
// reported while offline carry offline:true. The outbox is bounded (Limits;
// 50,000 messages and 16 MiB by default); when full it gives up the oldest
// heartbeats first, then faults, inventories and acks, and transactions last,
// and counts and logs each message given up.
//
// The outbox file is also the terminal's only record of its seq: put
// StoreDir on storage that survives reboots and updates. A terminal whose
// outbox is wiped (a factory reset) starts again at seq 1; the server
// recognises the restart (a seen seq stamped later than the newest message,
// or one more than an outbox below it), stores the messages and counts a
// seq reset for the terminal. A message given up because the outbox was
// full leaves a gap in seq, which the server counts: a message was lost,
// and the gap says so.
//
// Reports are checked with posfleet.Decode before they are stored: a
// message the server would refuse (a value out of range, anything that looks
// like a card number) is refused at once with the reason, and never sent.
//
// Connection: client ID and username "{tenant}:{terminal}", the secret as
// password, a persistent session (commands queued while offline arrive),
// the last will {"online":false} retained on status, and {"online":true}
// after each connect. Reconnects back off exponentially with full jitter, so
// that a fleet losing its broker does not return in the same second. No call
// waits without a bound: every MQTT acknowledgement is awaited for at most
// Config.AckTimeout, and commands are carried out on their own goroutine,
// never on the MQTT receive loop.
//
// Commands: update_firmware downloads the package (bounded in time and
// size), checks its sha256, and hands it to Config.Flash; reboot calls
// Config.Reboot. Each is answered on ack with accepted, then done or failed
// with the reason, and followed by a new inventory (boot_reason update or
// user, and the update's outcome). A malformed command, or one whose topic
// is not the terminal's own, is answered rejected (the broker's ACL already
// keeps other terminals' commands away; the check is a second line). A
// payload that is not even JSON carries no id to answer and is only logged.
// A command redelivered by MQTT after it was carried out is not carried out
// again: the outbox remembers the last 100 command IDs.
//
// This is the only posfleet package that imports the MQTT client library
// (paho).
package firmwareclient
