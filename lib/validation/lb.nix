# Load-balancer listeners: their backends (the listener's and each route's)
# point at something, and the fields that only some protocols use are set on
# those protocols only.
{
  lib,
  config,
  topology,
  ucTypes,
  ...
}: let
  cfg = config.cluster;
  list = names: builtins.toJSON names;
  l7 = l: builtins.elem l.protocol ["http" "https"];

  # One set of backends (`path` is where it is declared).
  backendRules = path: b: let
    svc = cfg.services.${b.service};
    port =
      if b.servicePort != null
      then b.servicePort
      else topology.defaultPort svc;
  in
    [
      {
        assertion = b.service == null || cfg.services ? ${b.service};
        message = "${path}.service = \"${toString b.service}\" is not a service in cluster.services (known: ${list (builtins.attrNames cfg.services)}); fix the name or declare the service.";
      }
      {
        assertion = b.service != null || b.endpoints != [];
        message = "${path} is empty; set ${path}.service or ${path}.endpoints.";
      }
      {
        assertion = b.service != null || lib.any (e: (b.weights.${e} or 1) > 0) b.endpoints;
        message = "${path}.weights: every endpoint weighs 0, so nothing would get traffic; give one a weight above 0.";
      }
    ]
    ++ lib.optional (b.service != null && cfg.services ? ${b.service}) {
      assertion = port != null && svc.ports ? ${port};
      message =
        if port == null
        then "${path}.servicePort is unset and service \"${b.service}\" has ${toString (builtins.length (builtins.attrNames svc.ports))} ports; name one of ${list (builtins.attrNames svc.ports)}."
        else "${path}.servicePort = \"${port}\" is not a port of service \"${b.service}\" (${list (builtins.attrNames svc.ports)}).";
    }
    ++ map (e: {
      assertion = builtins.match ".+:[0-9]+" e != null;
      message = "${path}.endpoints: \"${e}\" is not address:port.";
    })
    b.endpoints
    ++ map (e: {
      assertion = builtins.elem e b.endpoints;
      message = "${path}.weights.\"${e}\" names no endpoint of ${path}.endpoints (${list b.endpoints}); weights are keyed by the endpoint as written there.";
    }) (builtins.attrNames b.weights);

  routeRules = path: i: r: let
    at = "${path}.routes.${toString i}";
  in
    [
      {
        assertion = lib.hasPrefix "/" r.pathPrefix;
        message = "${at}.pathPrefix = \"${r.pathPrefix}\" must start with \"/\".";
      }
      {
        assertion = r.host == null || builtins.match "(\\*\\.)?[A-Za-z0-9.-]+" r.host != null;
        message = "${at}.host = \"${toString r.host}\" is not a host name (letters, digits, dots and dashes, optionally starting with \"*.\"; no port).";
      }
    ]
    ++ backendRules "${at}.backends" r.backends;

  listenerRules = name: l: let
    path = "cluster.lb.listeners.${name}";
    l7Only = field: set: {
      assertion = l7 l || !set;
      message = "${path}.${field} is for http and https listeners; ${path}.protocol is \"${l.protocol}\".";
    };
  in
    [
      {
        assertion = !l.proxyProtocol || l.protocol == "tcp";
        message = "${path}.proxyProtocol = true needs protocol = \"tcp\" (it is \"${l.protocol}\"): the PROXY header goes to backends of TCP listeners; http and https listeners send X-Forwarded-For instead.";
      }
      {
        assertion = !l.xdp.enable || (l.xdp.interface != null && l.address != null && builtins.elem l.protocol ["tcp" "udp"]);
        message = "${path}.xdp.enable needs xdp.interface, an address (the VIP) and protocol tcp or udp.";
      }
      (l7Only "routes" (l.routes != []))
      (l7Only "timeouts.clientHeaderSeconds" (l.timeouts.clientHeaderSeconds != null))
      (l7Only "timeouts.responseSeconds" (l.timeouts.responseSeconds != null))
      (l7Only "backendTls.enable" l.backendTls.enable)
      {
        assertion = !l.backendTls.enable || l.backendTls.caFile != null;
        message = "${path}.backendTls.enable needs ${path}.backendTls.caFile: the backends are verified against that CA bundle only (the system's roots are not used); give its path on the node, e.g. \"/etc/uc/backend-ca.pem\".";
      }
      {
        assertion = l.backendTls.caFile == null || ucTypes.isSecretPath l.backendTls.caFile;
        message = "${path}.backendTls.caFile = \"${toString l.backendTls.caFile}\" is not an absolute path outside the Nix store; give the path of the CA bundle on the node as a string (uc-lb re-reads it when it changes), e.g. \"/etc/uc/backend-ca.pem\".";
      }
    ]
    ++ backendRules "${path}.backends" l.backends
    ++ lib.concatLists (lib.imap0 (routeRules path) l.routes);
in {
  assertions = lib.concatLists (lib.mapAttrsToList listenerRules cfg.lb.listeners);
}
