"""notification-controller: Alerts x Providers from the bus to webhooks, durably; Receivers that trigger reconciles."""
