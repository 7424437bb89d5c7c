# expect: cluster.lb.listeners.api.backends.weights."10.0.0.9:80" names no endpoint of cluster.lb.listeners.api.backends.endpoints (["10.0.0.8:80"])
{
  cluster.lb.listeners.api.backends = {
    endpoints = ["10.0.0.8:80"];
    weights."10.0.0.9:80" = 2;
  };
}
