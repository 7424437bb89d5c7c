# cluster.lb: listeners run by uc-lb on edge nodes.
{
  lib,
  config,
  ucTypes,
  ...
}: let
  inherit (lib) mkOption types;
  cfg = config.cluster.lb;

  # Where traffic goes: a listener's default backends, and each route's.
  backendsOptions = {
    service = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "web";
      description = "Send traffic to the healthy instances of this service.";
    };
    servicePort = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "Name of the service's port to send to; default: its only port.";
    };
    endpoints = mkOption {
      type = types.listOf types.str;
      default = [];
      example = ["10.0.0.50:8080"];
      description = "Static backends as `address:port`, in addition to `service`.";
    };
    # Keyed by endpoint rather than endpoints as {address; weight;}: the
    # endpoints list keeps its shape (records and configs written before
    # weights parse as they were), and one weight is overridden alone.
    weights = mkOption {
      type = types.attrsOf (types.ints.between 0 256);
      default = {};
      example = {"10.0.0.50:8080" = 3;};
      description = ''
        Weights of static `endpoints`, keyed by the endpoint as written
        there; an endpoint not named here weighs 1, and so does each instance
        of `service`. A backend gets new connections (HTTP: requests) in
        proportion to its weight under every `balance`; weight 0 gets none.
      '';
    };
  };

  listenerModule = {name, ...}: {
    options = {
      name = mkOption {
        type = types.str;
        default = name;
        readOnly = true;
        description = "The listener's name (its attribute name).";
      };
      protocol = mkOption {
        type = types.enum ["tcp" "udp" "http" "https"];
        default = "tcp";
        description = "L4 (`tcp`, `udp`) or L7 (`http`, `https` with TLS terminated by uc-lb).";
      };
      port = mkOption {
        type = types.port;
        description = "Port to listen on.";
      };
      address = mkOption {
        type = types.nullOr ucTypes.ipAddress;
        default = null;
        description = "Address to listen on; default: each LB node's first address.";
      };
      nodes = mkOption {
        type = types.listOf types.str;
        default = cfg.nodes;
        defaultText = lib.literalExpression "config.cluster.lb.nodes";
        description = "Nodes this listener runs on.";
      };
      backends = backendsOptions;
      balance = mkOption {
        type = types.enum ["round-robin" "least-connections" "maglev"];
        default = "round-robin";
        description = ''
          How a backend is chosen, in proportion to `backends.weights`:
          `round-robin` in turn; `least-connections` the fewest open
          connections (HTTP: requests in flight) per unit of weight; `maglev`
          consistent hashing of the client's address, so a client keeps its
          backend while the backends stay, and removing one of N backends
          moves about 1/N of the clients.
        '';
      };
      proxyProtocol = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Send a PROXY protocol v2 header first on each connection to a
          backend, naming the client's address and port and the listener's
          (`tcp` listeners only; an `http` listener sets X-Forwarded-For).
          The backends must expect it (nginx `listen … proxy_protocol`,
          HAProxy `accept-proxy`).
        '';
      };
      timeouts = {
        connectSeconds = mkOption {
          type = types.nullOr types.ints.positive;
          default = null;
          description = "Seconds to connect to a backend before another is tried; default: uc-lb's `--connect-timeout` (3).";
        };
        idleSeconds = mkOption {
          type = types.nullOr types.ints.positive;
          default = null;
          description = ''
            Seconds a connection may pass with no byte either way before
            uc-lb closes it: a `tcp` connection (default: never), a `udp`
            session (default: `--udp-idle-timeout`, 30), an `http`/`https`
            keep-alive connection between requests (default:
            `--client-timeout`, 10).
          '';
        };
        clientHeaderSeconds = mkOption {
          type = types.nullOr types.ints.positive;
          default = null;
          description = ''
            `http`/`https`: seconds a client has to send a request head or
            finish a TLS handshake (slow clients are cut off); default:
            `--client-timeout` (10).
          '';
        };
        responseSeconds = mkOption {
          type = types.nullOr types.ints.positive;
          default = null;
          description = "`http`/`https`: seconds a backend has to send a response head before the client gets a 504; default: `--response-timeout` (30).";
        };
        drainSeconds = mkOption {
          type = types.nullOr types.ints.positive;
          default = null;
          description = "Seconds a removed or drained backend's open connections may go on before uc-lb closes them; default: `--drain-timeout` (30).";
        };
      };
      routes = mkOption {
        type = types.listOf (types.submodule {
          options = {
            host = mkOption {
              type = types.nullOr types.str;
              default = null;
              example = "api.example.org";
              description = "Host the request names (Host header or HTTP/2 authority, without port, any case); `*.example.org` matches its subdomains; null matches any host.";
            };
            pathPrefix = mkOption {
              type = types.str;
              default = "/";
              example = "/api/";
              description = "Path the request's path starts with.";
            };
            backends = backendsOptions;
          };
        });
        default = [];
        example = lib.literalExpression ''[{host = "api.example.org"; backends.service = "api";}]'';
        description = ''
          `http`/`https` only: requests are routed by host and path to the
          backends of the first route that matches, in order; a request no
          route matches goes to the listener's `backends`. Every route's
          backends are probed with `healthCheck` and chosen by `balance`.
        '';
      };
      healthCheck = {
        type = mkOption {
          type = types.enum ["tcp" "http"];
          default = "tcp";
          description = "Backend probe: TCP connect, or HTTP GET expecting 2xx.";
        };
        path = mkOption {
          type = types.str;
          default = "/";
          description = "Request path of an `http` probe.";
        };
        intervalSeconds = mkOption {
          type = types.ints.positive;
          default = 5;
          description = "Seconds between probes.";
        };
        timeoutSeconds = mkOption {
          type = types.ints.positive;
          default = 2;
          description = "Seconds before a probe counts as failed.";
        };
        rise = mkOption {
          type = types.ints.positive;
          default = 2;
          description = "Consecutive successes before a backend is used.";
        };
        fall = mkOption {
          type = types.ints.positive;
          default = 3;
          description = "Consecutive failures before a backend is dropped.";
        };
      };
      xdp = {
        enable = mkOption {
          type = types.bool;
          default = false;
          description = "Balance this `tcp` or `udp` listener's VIP in the kernel (uc-lb's XDP fast path): packets are sent IPIP-encapsulated to a backend chosen by Maglev hashing, which answers the client directly (backends need an ipip device and the VIP on lo; see docs/lb.md).";
        };
        interface = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "eth0";
          description = "Network interface the VIP's packets arrive on, where the XDP program is attached.";
        };
        mode = mkOption {
          type = types.enum ["native" "generic"];
          default = "native";
          description = "`native`: in the driver (fast; falls back to generic when the driver has no XDP); `generic`: after the kernel built its socket buffer (works on every interface, slower).";
        };
      };
      backendTls = {
        enable = mkOption {
          type = types.bool;
          default = false;
          description = ''
            `http`/`https`: speak HTTP/1.1 over TLS to the backends (and to
            their `http` health probes), verifying each backend's
            certificate against `caFile`.
          '';
        };
        caFile = mkOption {
          type = types.nullOr ucTypes.secretPath;
          default = null;
          example = "/etc/uc/backend-ca.pem";
          description = ''
            PEM bundle of the CAs that sign the backends' certificates, as a
            path on the node (not the Nix store: it is re-read when the file
            changes). Required with `enable`: the system's roots are not
            used, since backends are the operator's own.
          '';
        };
        serverName = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "web.internal";
          description = "Name sent as SNI and verified in the backend's certificate; null: the backend's address, which must then be in the certificate's IP SANs.";
        };
      };
      tls = {
        certificateFile = mkOption {
          type = types.nullOr ucTypes.secretPath;
          default = null;
          description = "PEM certificate chain for `https`, as a path on the node.";
        };
        keyFile = mkOption {
          type = types.nullOr ucTypes.secretPath;
          default = null;
          description = "PEM private key for `https`, as a path on the node (never a Nix path).";
        };
      };
    };
  };
in {
  options.cluster.lb = {
    nodes = mkOption {
      type = types.listOf types.str;
      default = builtins.attrNames (lib.filterAttrs (_: n: builtins.elem "edge" n.roles) config.cluster.nodes);
      defaultText = lib.literalMD "the `edge` nodes";
      description = "Nodes running uc-lb.";
    };
    httpPort = mkOption {
      type = types.port;
      default = 9154;
      description = "Port of uc-lb's /metrics and /health endpoint.";
    };
    listeners = mkOption {
      type = types.attrsOf (types.submodule listenerModule);
      default = {};
      description = "Load-balanced listeners, by name.";
    };
    vip = {
      interface = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "eth0";
        description = ''
          Interface a virtual IP is added to by the LB node holding it (a
          listener `address` that is on no interface of the node is a VIP,
          held by one LB node at a time). Default: the interface with an
          address whose subnet contains the VIP.
        '';
      };
      leaseTtlSeconds = mkOption {
        type = types.ints.between 2 3600;
        default = 5;
        description = ''
          TTL of the store lease behind a VIP: when its holder dies, another
          LB node takes the VIP within this many seconds.
        '';
      };
    };
    bgp = {
      enable = lib.mkEnableOption "announcing the VIPs an LB node holds over BGP (BIRD 2 on the LB nodes)";
      asn = mkOption {
        type = types.ints.between 1 4294967295;
        default = 65000;
        description = "Autonomous system number of the LB nodes.";
      };
      peers = mkOption {
        type = types.listOf (types.submodule {
          options = {
            address = mkOption {
              type = ucTypes.ipAddress;
              description = "The BGP neighbour's address.";
            };
            asn = mkOption {
              type = types.ints.between 1 4294967295;
              description = "The neighbour's autonomous system number.";
            };
          };
        });
        default = [];
        example = [
          {
            address = "10.0.0.1";
            asn = 64512;
          }
        ];
        description = "BGP neighbours every LB node announces its VIPs to.";
      };
    };
  };
}
