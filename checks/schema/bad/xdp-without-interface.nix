# expect: cluster.lb.listeners.api.xdp.enable needs xdp.interface, an address (the VIP) and protocol tcp or udp.
{cluster.lb.listeners.api.xdp.enable = true;}
