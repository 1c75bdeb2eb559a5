package notify_test

import (
	"encoding/json"
	"io"
	"log"
	"net/http"
	"sync"
	"time"

	"github.com/posfleet/posfleet/notify"
)

// A receiver of posfleet's webhooks: verify the raw body, then drop
// repeats by ID.
func ExampleVerifyWebhook() {
	secret := "the channel's secret"
	var mu sync.Mutex
	seen := map[string]bool{} // a real receiver keeps this in its database
	http.HandleFunc("/hooks/posfleet", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		if err := notify.VerifyWebhook(secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var n notify.WebhookPayload
		if err := json.Unmarshal(body, &n); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		mu.Lock()
		repeat := seen[n.ID]
		seen[n.ID] = true
		mu.Unlock()
		if !repeat {
			log.Printf("%s %s: %s", n.Event, n.Tenant, n.URL)
		}
		w.WriteHeader(http.StatusNoContent) // 2xx: posfleet marks it delivered
	})
}
