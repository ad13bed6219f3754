"""HTTP routers: parse the request, call a service, shape the response.  Rules live in ``services``."""
