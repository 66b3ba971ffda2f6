"""The API's routes, a module per concern; each adds its routes to the app with one function."""
