# cluster.lb: listeners run by uc-lb on edge nodes.
{
  lib,
  config,
  ucTypes,
  ...
}: let
  inherit (lib) mkOption types;
  cfg = config.cluster.lb;

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
      backends = {
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
      };
      balance = mkOption {
        type = types.enum ["round-robin" "least-connections"];
        default = "round-robin";
        description = "How a backend is chosen.";
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
  };
}
