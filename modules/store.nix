# services.ultracloud.store: uc-store, the Raft-replicated store speaking
# etcd's v3 API, on the cluster's store members.
{
  config,
  lib,
  pkgs,
  ...
}: let
  inherit (lib) mkOption types;
  cfg = config.services.ultracloud.store;
  listen = import ./listen.nix {inherit lib;};
  urls = description:
    mkOption {
      type = types.listOf listen.urlType;
      example = ["http://10.0.0.1:2379"];
      description = "${description} (\"http://address:port\", an IPv6 address in brackets); their ports are opened when `openFirewall` is set.";
    };
  # A key whose projection is cluster.store.<name>, the same on every member.
  clusterWide = name: type: description:
    mkOption {
      inherit type;
      description = "${description} Defaults to `cluster.store.${name}`; set that to change every member alike.";
    };
in {
  options.services.ultracloud.store = import ./daemon-options.nix {inherit lib config pkgs;} {
    daemon = "store";
    description = "uc-store, UltraCloud's store";
    firewallPurpose = "clients, peers and metrics";
    listenFrom = {
      client = "listenClientUrls";
      peer = "listenPeerUrls";
      metrics = "listenMetricsUrls";
    };
    settingsOptions = {
      listenClientUrls = urls "URLs served to clients (etcd's --listen-client-urls)";
      listenPeerUrls = urls "URLs served to the other members (etcd's --listen-peer-urls)";
      listenMetricsUrls = urls "URLs serving /metrics and /health (etcd's --listen-metrics-urls)";
      electionTimeoutMs = clusterWide "electionTimeoutMs" types.ints.positive "Raft election timeout in milliseconds (etcd's --election-timeout).";
      heartbeatIntervalMs = clusterWide "heartbeatIntervalMs" types.ints.positive "Raft heartbeat interval in milliseconds (etcd's --heartbeat-interval).";
      autoCompactionRetention = clusterWide "autoCompactionRetention" types.str "History kept (etcd's --auto-compaction-retention): hours, or a duration such as `30m`; `0` disables.";
      quotaBackendBytes = clusterWide "quotaBackendBytes" types.ints.unsigned "Size at which the store raises the NOSPACE alarm and refuses writes (etcd's --quota-backend-bytes).";
      leaseReads = clusterWide "leaseReads" types.bool "Serve linearizable reads on the leader's lease instead of a quorum round per read.";
    };
  };

  config = lib.mkIf cfg.enable {
    environment.etc."ultracloud/store.json" = {
      text = builtins.toJSON cfg.settings;
      mode = "0444";
    };

    users.users.ultracloud-store = {
      isSystemUser = true;
      group = "ultracloud-store";
      description = "UltraCloud store";
    };
    users.groups.ultracloud-store = {};

    systemd.services.uc-store = {
      description = "UltraCloud store (etcd v3 API)";
      wantedBy = ["multi-user.target"];
      after = ["network-online.target"];
      wants = ["network-online.target"];
      restartTriggers = [config.environment.etc."ultracloud/store.json".text];
      # A network daemon that only needs its state dir (./hardening.nix).
      serviceConfig =
        import ./hardening.nix
        // {
          ExecStart = "${cfg.package}/bin/uc-store --config /etc/ultracloud/store.json";
          User = "ultracloud-store";
          Group = "ultracloud-store";
          # settings.dataDir is /var/lib/ultracloud/store.
          StateDirectory = "ultracloud/store";
          StateDirectoryMode = "0700";
          Restart = "on-failure";
          RestartSec = 5;
        };
    };

    networking.firewall.allowedTCPPorts = lib.optionals cfg.openFirewall (listen.ports cfg.listen);
  };
}
