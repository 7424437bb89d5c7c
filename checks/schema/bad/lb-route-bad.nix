# expect: cluster.lb.listeners.api.routes.0.backends.service = "apii" is not a service in cluster.services (known: ["api"])
# expect: cluster.lb.listeners.api.routes.1.pathPrefix = "v2" must start with "/".
# expect: cluster.lb.listeners.api.routes.1.backends is empty; set cluster.lb.listeners.api.routes.1.backends.service or cluster.lb.listeners.api.routes.1.backends.endpoints.
# expect: cluster.lb.listeners.api.routes.1.host = "api.example.org:8080" is not a host name
{
  cluster.lb.listeners.api = {
    protocol = "http";
    routes = [
      {
        host = "api.example.org";
        backends.service = "apii";
      }
      {
        host = "api.example.org:8080";
        pathPrefix = "v2";
      }
    ];
  };
}
