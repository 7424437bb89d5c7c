# expect: cluster.lb.listeners.api.backends.service = "apii" is not a service in cluster.services (known: ["api"]); fix the name or declare the service.
{lib, ...}: {cluster.lb.listeners.api.backends.service = lib.mkForce "apii";}
