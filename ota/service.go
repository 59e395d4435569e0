package ota

import "context"

// Service is this node's OTA side as the API and the data plane use it: firmware files and
// links (Firmware) and the device side of the firmware topics (Devices).
type Service struct {
	*Firmware
	*Devices
}

// Run copies firmware files into this node's store and flushes device reports until ctx
// ends.
func (s *Service) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() { defer close(done); s.Firmware.Replicate(ctx) }()
	s.Devices.Run(ctx)
	<-done
}
