# cluster.store: the uc-store (etcd v3 API) cluster every daemon talks to.
{
  lib,
  config,
  ...
}: let
  inherit (lib) mkOption types;
in {
  options.cluster.store = {
    members = mkOption {
      type = types.listOf types.str;
      default = builtins.attrNames (lib.filterAttrs (_: n: builtins.elem "control-plane" n.roles) config.cluster.nodes);
      defaultText = lib.literalMD "the `control-plane` nodes";
      description = "Nodes that are voting members of the store. Use an odd number: 1, 3 or 5.";
    };
    clientPort = mkOption {
      type = types.port;
      default = 2379;
      description = "etcd v3 API port for clients.";
    };
    peerPort = mkOption {
      type = types.port;
      default = 2380;
      description = "Raft port between members.";
    };
    metricsPort = mkOption {
      type = types.port;
      default = 2381;
      description = "Port of /metrics and /health (etcd's --listen-metrics-urls).";
    };
    dataDir = mkOption {
      type = types.str;
      default = "/var/lib/ultracloud/store";
      description = "Where the Raft log and the key-value data live.";
    };
    clusterToken = mkOption {
      type = types.str;
      default = "uc-${config.cluster.name}";
      defaultText = lib.literalExpression ''"uc-''${config.cluster.name}"'';
      description = "Initial cluster token (etcd's --initial-cluster-token): keeps two clusters from joining by mistake.";
    };
    electionTimeoutMs = mkOption {
      type = types.ints.positive;
      default = 1000;
      description = "Raft election timeout in milliseconds.";
    };
    heartbeatIntervalMs = mkOption {
      type = types.ints.positive;
      default = 100;
      description = "Raft heartbeat interval in milliseconds.";
    };
    autoCompactionRetention = mkOption {
      type = types.str;
      default = "0";
      example = "1h";
      description = "Keep this much history (etcd's --auto-compaction-retention: hours, or a duration like `30m`); `0` disables.";
    };
    quotaBackendBytes = mkOption {
      type = types.ints.unsigned;
      default = 2147483648;
      description = "Size at which the store raises the NOSPACE alarm and refuses writes.";
    };
    leaseReads = mkOption {
      type = types.bool;
      default = true;
      description = "Serve linearizable reads on the leader's lease while a quorum acknowledged it recently (no heartbeat round per read; assumes members' clocks run at nearly the same rate). `false`: a quorum round per read round, as etcd.";
    };
  };
}
