# Per-node daemon configs: `manifest.nodes.<n>.daemons.<daemon>` is exactly
# what that daemon reads from /etc/ultracloud/<daemon>.json.
{
  lib,
  cfg,
  topology,
  schemaVersion,
}: n: let
  inherit (topology) hostPort storeClientUrls;
  address = topology.primaryAddress n;
  url = port: "http://${hostPort address port}";
  common = {
    inherit schemaVersion;
    cluster = cfg.name;
    node = n;
  };
  withStore = port:
    common
    // {
      httpListen = hostPort address port;
      storeEndpoints = storeClientUrls;
    };

  configs = {
    store =
      common
      // {
        name = n;
        inherit (cfg.store) dataDir electionTimeoutMs heartbeatIntervalMs autoCompactionRetention quotaBackendBytes leaseReads;
        listenClientUrls = [(url cfg.store.clientPort)];
        advertiseClientUrls = [(url cfg.store.clientPort)];
        listenPeerUrls = [(url cfg.store.peerPort)];
        initialAdvertisePeerUrls = [(url cfg.store.peerPort)];
        listenMetricsUrls = [(url cfg.store.metricsPort)];
        initialCluster =
          map (m: {
            name = m;
            peerUrls = ["http://${hostPort (topology.primaryAddress m) cfg.store.peerPort}"];
          })
          topology.storeMembers;
        initialClusterState = "new";
        initialClusterToken = cfg.store.clusterToken;
      };

    deployer =
      withStore cfg.deployer.port
      // {
        inherit (cfg.deployer) dataDir enrollmentTokenFile;
        cache = {
          inherit (cfg.deployer.cache) signingKeyFile publicKeys;
        };
      };

    scheduler =
      withStore cfg.scheduler.port
      // {
        inherit (cfg.scheduler) nodeLossGraceSeconds;
      };

    iam =
      withStore cfg.iam.httpPort
      // {
        inherit (cfg.iam) signingKeyFile bootstrapAdminSecretFile tokenTtlSeconds auditRetentionSeconds;
      };

    nix-agent =
      withStore cfg.nixAgent.port
      // {
        inherit (cfg.nixAgent) profile stateDir;
        cacheUrls = topology.deployerUrls;
        trustedPublicKeys = cfg.deployer.cache.publicKeys;
        inherit (cfg.rollout) switchAction healthGateTimeoutSeconds;
        healthChecks = map (c: {inherit (c) name type command address url timeoutSeconds;}) cfg.rollout.healthChecks;
      };

    node-agent =
      withStore cfg.nodeAgent.port
      // {
        inherit address;
        inherit (cfg.nodeAgent) stateDir heartbeatTtlSeconds;
      };

    dns =
      withStore cfg.dns.httpPort
      // {
        listen = [(hostPort address cfg.dns.port)];
        zones = builtins.attrNames cfg.dns.zones;
      };

    lb =
      withStore cfg.lb.httpPort
      // {
        listeners = topology.listenersOn n;
        vip = {inherit (cfg.lb.vip) interface leaseTtlSeconds;};
      };
  };
in
  lib.genAttrs (topology.daemonsOn n) (d: configs.${d})
