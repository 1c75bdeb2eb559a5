package firmwareclient

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/posfleet/posfleet"
)

// commandLoop carries out commands one at a time, off paho's receive
// goroutine.
func (c *Client) commandLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case in := <-c.cmds:
			c.st.commands.Add(1)
			c.handle(ctx, in.topic, in.payload)
		}
	}
}

// commandError is a command refused before it is carried out: the ack
// says rejected with its text.
type commandError string

func (e commandError) Error() string { return string(e) }

// parseCommand checks a command received on topic.
func (c *Client) parseCommand(topic string, payload []byte) (posfleet.Command, error) {
	var cmd posfleet.Command
	if err := json.Unmarshal(payload, &cmd); err != nil {
		// Try to find the id anyway, to say which command was malformed.
		var probe struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(payload, &probe)
		cmd = posfleet.Command{ID: probe.ID}
		return cmd, commandError("malformed command: not a JSON command object")
	}
	if ref, ch, err := posfleet.ParseTopic(topic); err != nil || ref != c.ref || ch != posfleet.ChannelCommand {
		return cmd, commandError(fmt.Sprintf("command for another terminal or channel (topic %.100s): refused", topic))
	}
	switch cmd.Type {
	case posfleet.CmdReboot:
	case posfleet.CmdUpdateFirmware:
		if cmd.Target == "" || len(cmd.Target) > 64 || strings.ContainsAny(cmd.Target, " \t\r\n") {
			return cmd, commandError("malformed update: target must be a version of 1..64 characters without spaces")
		}
		u, err := url.Parse(cmd.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cmd, commandError("malformed update: url must be an http:// or https:// URL")
		}
		if b, err := hex.DecodeString(cmd.SHA256); err != nil || len(b) != sha256.Size {
			return cmd, commandError("malformed update: sha256 must be 64 hexadecimal digits")
		}
	default:
		return cmd, commandError(fmt.Sprintf("unknown command type %.40q", cmd.Type))
	}
	return cmd, nil
}

// handle carries out one command and answers it on ack.
func (c *Client) handle(ctx context.Context, topic string, payload []byte) {
	cmd, err := c.parseCommand(topic, payload)
	if cmd.ID == "" || len(cmd.ID) > 64 {
		// An ack needs the command's id (1..64 characters): without one
		// there is nothing to answer.
		c.log.Warn("command without a usable id ignored", "topic", topic, "err", err)
		return
	}
	if err != nil {
		c.log.Warn("command rejected", "cmd_id", cmd.ID, "err", err)
		c.ack(ctx, cmd.ID, posfleet.AckRejected, err.Error())
		return
	}
	seen, err := c.box.handled(cmd.ID, c.cfg.Now())
	if err != nil {
		c.log.Error("command not carried out", "cmd_id", cmd.ID, "err", err)
		return
	}
	if seen {
		// An MQTT redelivery of a command already carried out: its acks
		// went out the first time.
		c.log.Info("command already carried out; ignored", "cmd_id", cmd.ID)
		return
	}
	if c.cfg.OnCommand != nil {
		c.cfg.OnCommand(ctx, cmd)
	}
	switch cmd.Type {
	case posfleet.CmdUpdateFirmware:
		c.update(ctx, cmd)
	case posfleet.CmdReboot:
		c.reboot(ctx, cmd)
	}
}

// ack answers a command. The answer goes to the outbox even when ctx has
// ended (the terminal shutting down in the middle of a download): the
// server learns the outcome at the next start instead of never.
func (c *Client) ack(ctx context.Context, id, status, detail string) {
	if err := c.reportAck(context.WithoutCancel(ctx), id, status, detail); err != nil {
		c.log.Error("ack not reported", "cmd_id", id, "status", status, "err", err)
	}
}

func (c *Client) reportUpdate(ctx context.Context, inv posfleet.Inventory, target, status, why string) {
	if len(why) > posfleet.MaxFaultDetail {
		why = why[:posfleet.MaxFaultDetail]
	}
	inv.Update = &posfleet.UpdateAttempt{Target: target, Status: status, Error: why}
	if err := c.ReportInventory(context.WithoutCancel(ctx), inv); err != nil {
		c.log.Error("inventory not reported", "err", err)
	}
}

// update downloads, verifies and flashes a firmware package.
func (c *Client) update(ctx context.Context, cmd posfleet.Command) {
	if c.cfg.Flash == nil {
		c.ack(ctx, cmd.ID, posfleet.AckRejected, "this terminal does not take remote updates")
		return
	}
	c.ack(ctx, cmd.ID, posfleet.AckAccepted, "downloading "+cmd.Target)
	inv := c.Inventory()
	c.reportUpdate(ctx, inv, cmd.Target, posfleet.UpdateDownloading, "")
	fail := func(why string) {
		c.log.Warn("update failed", "cmd_id", cmd.ID, "target", cmd.Target, "why", why)
		c.ack(ctx, cmd.ID, posfleet.AckFailed, why)
		c.reportUpdate(ctx, inv, cmd.Target, posfleet.UpdateFailed, why)
	}
	u, err := c.download(ctx, cmd)
	if err != nil {
		fail(err.Error())
		return
	}
	defer os.Remove(u.Path)
	// Saved before flashing: a Flash that restarts the terminal is judged
	// at the next start (finishPending).
	if err := c.box.setPending(&pendingCommand{Cmd: cmd, From: inv.Firmware}); err != nil {
		fail(err.Error())
		return
	}
	err = c.cfg.Flash(ctx, u)
	if perr := c.box.setPending(nil); perr != nil {
		c.log.Error("pending command not cleared", "err", perr)
	}
	if err != nil {
		fail("flash: " + err.Error())
		return
	}
	inv.Firmware, inv.BootReason = cmd.Target, posfleet.BootUpdate
	c.reportUpdate(ctx, inv, cmd.Target, posfleet.UpdateInstalled, "")
	c.ack(ctx, cmd.ID, posfleet.AckDone, "running "+cmd.Target)
}

// download fetches the package into a file, hashing it on the way, and
// checks size and digest. Its errors are ack details: short and clear.
func (c *Client) download(ctx context.Context, cmd posfleet.Command) (Update, error) {
	d := c.cfg.Download
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cmd.URL, nil)
	if err != nil {
		return Update{}, fmt.Errorf("download: %v", err)
	}
	hc := d.Client
	if hc == nil {
		hc = &http.Client{Timeout: d.Timeout}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Update{}, fmt.Errorf("download: %s", shortHTTPError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Update{}, fmt.Errorf("download: server answered %s", resp.Status)
	}
	if resp.ContentLength > d.MaxBytes {
		return Update{}, fmt.Errorf("download: package of %d bytes is over the limit of %d", resp.ContentLength, d.MaxBytes)
	}
	dir := d.Dir
	if dir == "" {
		dir = c.cfg.StoreDir // "" with a shared Store: the system's temporary directory
	}
	f, err := os.CreateTemp(dir, "firmware-*.pkg")
	if err != nil {
		return Update{}, fmt.Errorf("download: no room for the package: %v", err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, d.MaxBytes+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	u := Update{Target: cmd.Target, Path: f.Name(), SHA256: strings.ToLower(cmd.SHA256), Size: n}
	fail := func(format string, args ...any) (Update, error) {
		os.Remove(f.Name())
		return Update{}, fmt.Errorf(format, args...)
	}
	switch {
	case err != nil:
		return fail("download interrupted after %d bytes: %s", n, shortHTTPError(err))
	case n > d.MaxBytes:
		return fail("download: package over the limit of %d bytes", d.MaxBytes)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != u.SHA256 {
		return fail("sha256 mismatch: package has %s, command says %s", got, u.SHA256)
	}
	return u, nil
}

// shortHTTPError drops the URL from an HTTP client error: the ack says
// what went wrong, the server already knows the URL.
func shortHTTPError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return err.Error()
}

// reboot restarts the terminal through the firmware's Reboot.
func (c *Client) reboot(ctx context.Context, cmd posfleet.Command) {
	if c.cfg.Reboot == nil {
		c.ack(ctx, cmd.ID, posfleet.AckRejected, "this terminal does not take remote reboots")
		return
	}
	c.ack(ctx, cmd.ID, posfleet.AckAccepted, "rebooting")
	if err := c.box.setPending(&pendingCommand{Cmd: cmd}); err != nil {
		c.ack(ctx, cmd.ID, posfleet.AckFailed, err.Error())
		return
	}
	err := c.cfg.Reboot(ctx)
	if perr := c.box.setPending(nil); perr != nil {
		c.log.Error("pending command not cleared", "err", perr)
	}
	if err != nil {
		c.ack(ctx, cmd.ID, posfleet.AckFailed, "reboot: "+err.Error())
		return
	}
	inv := c.Inventory()
	if inv.Model != "" {
		inv.BootReason, inv.Update = posfleet.BootUser, nil
		if err := c.ReportInventory(ctx, inv); err != nil {
			c.log.Error("inventory not reported", "err", err)
		}
	}
	c.ack(ctx, cmd.ID, posfleet.AckDone, "rebooted")
}

// finishPending answers a command that restarted the terminal: the new
// start is its outcome.
func (c *Client) finishPending(ctx context.Context) error {
	p, err := c.box.pending()
	if err != nil || p == nil {
		return err
	}
	c.invMu.Lock()
	inv := c.inv
	switch p.Cmd.Type {
	case posfleet.CmdReboot:
		c.inv.BootReason = posfleet.BootUser
	case posfleet.CmdUpdateFirmware:
		c.inv.BootReason = posfleet.BootUpdate
		if c.inv.Firmware == p.Cmd.Target {
			c.inv.Update = &posfleet.UpdateAttempt{Target: p.Cmd.Target, Status: posfleet.UpdateInstalled}
		} else {
			c.inv.Update = &posfleet.UpdateAttempt{Target: p.Cmd.Target, Status: posfleet.UpdateFailed,
				Error: "still running " + inv.Firmware + " after the update"}
		}
	}
	upd := c.inv.Update
	c.invMu.Unlock()
	switch {
	case p.Cmd.Type == posfleet.CmdReboot:
		c.ack(ctx, p.Cmd.ID, posfleet.AckDone, "rebooted")
	case upd != nil && upd.Status == posfleet.UpdateInstalled:
		c.ack(ctx, p.Cmd.ID, posfleet.AckDone, "running "+p.Cmd.Target)
	default:
		c.ack(ctx, p.Cmd.ID, posfleet.AckFailed, upd.Error)
	}
	return c.box.setPending(nil)
}
