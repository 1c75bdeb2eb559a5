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
	// Contact is how a crew reaches and finds the shop (the optional
	// provisioning columns of PROTOCOL.md §4); empty when not provisioned.
	Contact
}

// Contact is a site's street address, contact person, phone number and
// opening hours, as provisioned, for the crew's job sheet.
type Contact struct {
	Address      string `json:"address,omitempty"`
	Person       string `json:"contact,omitempty"`
	Phone        string `json:"phone,omitempty"`
	OpeningHours string `json:"opening_hours,omitempty"`
}
