# expect: cluster.lb.listeners.api.protocol = "https" needs tls.certificateFile and tls.keyFile (paths on the node).
{cluster.lb.listeners.api.protocol = "https";}
