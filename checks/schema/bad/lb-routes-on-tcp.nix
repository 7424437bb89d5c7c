# expect: cluster.lb.listeners.api.routes is for http and https listeners; cluster.lb.listeners.api.protocol is "tcp".
# expect: cluster.lb.listeners.api.timeouts.clientHeaderSeconds is for http and https listeners
{
  cluster.lb.listeners.api = {
    routes = [{pathPrefix = "/v2/";}];
    timeouts.clientHeaderSeconds = 5;
  };
}
