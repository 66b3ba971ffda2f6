"""The fault suite: each test reproduces one fault a reliability review found (poison input,
kill -9 under load, a database outage, a full disk, a bad model version) and asserts the
bound the platform promises (docs/architecture.md, "Delivery and durability")."""
