package posfleet

// Site is where a terminal stands and what it is, as the registry
// provisioned it and the work list shows it to a crew.
type Site struct {
	Model    string  `json:"model,omitempty"`
	Merchant string  `json:"merchant,omitempty"`
	Site     string  `json:"site,omitempty"`
	Region   string  `json:"region,omitempty"`
	Lat      float64 `json:"lat,omitempty"`
	Lon      float64 `json:"lon,omitempty"`
}
