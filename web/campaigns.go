package web

import (
	"context"

	"github.com/posfleet/posfleet"
)

// Campaigns is what the web side reads and changes of firmware campaigns
// (package campaign, through the server's adapter). Tenant scoping is the
// web side's: it reads a campaign before acting on it and answers "not
// found" for another tenant's.
type Campaigns interface {
	// ListCampaigns returns tenant's campaigns ("" = every tenant's),
	// newest first.
	ListCampaigns(ctx context.Context, tenant string) ([]posfleet.Campaign, error)
	// Campaign returns one campaign (posfleet.NotFound when there is none).
	Campaign(ctx context.Context, id string) (posfleet.Campaign, error)
	// CampaignTerminals returns a campaign's terminals in state ("" =
	// all), at most limit, ordered by wave then terminal.
	CampaignTerminals(ctx context.Context, id string, state posfleet.CampaignTerminalState, limit int) ([]posfleet.CampaignTerminal, error)
	// CampaignEvents returns a campaign's timeline, oldest first.
	CampaignEvents(ctx context.Context, id string) ([]posfleet.CampaignEvent, error)
	// PreviewCampaign says which terminals spec would select and how
	// many each wave would update, without creating anything; errors name
	// the field (posfleet.Invalid).
	PreviewCampaign(ctx context.Context, tenant string, spec posfleet.CampaignSpec) (posfleet.CampaignPreview, error)
	// CreateCampaign validates spec, chooses its terminals and starts it.
	CreateCampaign(ctx context.Context, tenant string, spec posfleet.CampaignSpec, by string) (posfleet.Campaign, error)
	// ActOnCampaign pauses, resumes, aborts or rolls back a campaign
	// (posfleet.Conflict when its state does not allow the action).
	ActOnCampaign(ctx context.Context, id string, action posfleet.CampaignAction, by, note string) (posfleet.Campaign, error)
}
