"""Where raw data comes from: simulators and loaders for the public files."""
