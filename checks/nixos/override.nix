# An operator overriding one key of a daemon's settings changes that key and
# nothing else. The ha cluster, with node cp1's `extraModules` overriding a
# leaf each of three daemons' settings (the store's election timeout, a key
# nested in the deployer's `cache`, the scheduler's listen address); every
# other field of their /etc/ultracloud/<daemon>.json must stay the
# manifest's, and cp2 (no override) must render its projection exactly.
# edge1 also gets a UDP and an https listener, and serves only those two
# (its lb `settings.listeners` overridden) with `tlsGroup`: the firewall
# opens their ports, each for its protocol, and no longer the left-out
# `www`; the unit gets the group.
# Evaluates to the list of failures; [] when all hold.
{nixpkgsLib}: let
  inherit (import ./system.nix {inherit nixpkgsLib;}) lib mkCluster;
  overrides = {
    store.electionTimeoutMs = 2000;
    deployer.cache.publicKeys = ["cache.example.org-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="];
    scheduler.httpListen = "[::]:17481";
  };
  cluster = mkCluster [
    ../../hosts/ha/cluster.nix
    {
      cluster.nodes.cp1.extraModules = [
        {services.ultracloud = lib.mapAttrs (_: settings: {inherit settings;}) overrides;}
      ];
      cluster.lb.listeners = {
        syslog = {
          protocol = "udp";
          port = 514;
          backends.endpoints = ["10.1.0.21:514"];
        };
        secure = {
          protocol = "https";
          port = 443;
          backends.service = "web";
          tls = {
            certificateFile = "/var/lib/acme/www/fullchain.pem";
            keyFile = "/var/lib/acme/www/key.pem";
          };
        };
      };
      cluster.nodes.edge1.extraModules = [
        {
          services.ultracloud.lb = {
            settings.listeners = ["syslog" "secure"];
            tlsGroup = "acme";
          };
        }
      ];
    }
  ];

  # What differs between the rendered file and what it should be, by key.
  compare = where: rendered: expected: let
    keys = lib.unique (builtins.attrNames rendered ++ builtins.attrNames expected);
    wrong = builtins.filter (k: rendered.${k} or null != expected.${k} or null) keys;
  in
    lib.optional (wrong != [])
    "${where}: ${lib.concatMapStringsSep ", " (k: "${k} is ${builtins.toJSON (rendered.${k} or "missing")}, expected ${builtins.toJSON (expected.${k} or "absent")}") wrong}";

  fileChecks = node: want: let
    inherit (cluster.nixosConfigurations.${node}) config;
  in
    lib.concatLists (lib.mapAttrsToList (d: projection: let
      file = config.environment.etc."ultracloud/${d}.json" or null;
    in
      if file == null
      then ["${node}: no /etc/ultracloud/${d}.json"]
      else compare "${node}: /etc/ultracloud/${d}.json" (builtins.fromJSON file.text) (want d projection))
    cluster.manifest.nodes.${node}.daemons);

  cp1 = cluster.nixosConfigurations.cp1.config;
  ports = cp1.networking.firewall.allowedTCPPorts;
  edge1 = cluster.nixosConfigurations.edge1.config;
  inherit (edge1.networking.firewall) allowedTCPPorts allowedUDPPorts;
in
  fileChecks "cp1" (d: projection: lib.recursiveUpdate projection (overrides.${d} or {}))
  ++ fileChecks "cp2" (_: projection: projection)
  ++ fileChecks "edge1" (d: projection:
    if d == "lb"
    then projection // {listeners = ["syslog" "secure"];}
    else projection)
  # uc-lb's firewall follows the listeners it serves, by protocol.
  ++ lib.optional (!(builtins.elem 443 allowedTCPPorts) || builtins.elem 80 allowedTCPPorts || builtins.elem 514 allowedTCPPorts)
  "edge1: the firewall opens TCP ${builtins.toJSON allowedTCPPorts}; expected 443 (https listener secure), not 80 (www, not served) nor 514 (a UDP listener)"
  ++ lib.optional (!(builtins.elem 514 allowedUDPPorts) || builtins.elem 443 allowedUDPPorts)
  "edge1: the firewall opens UDP ${builtins.toJSON allowedUDPPorts}; expected 514 (udp listener syslog) and not 443"
  ++ lib.optional ((edge1.systemd.services.uc-lb.serviceConfig.SupplementaryGroups or null) != ["acme"] || !(edge1.users.groups ? acme))
  "edge1: uc-lb cannot read the TLS files: tlsGroup = \"acme\" must give the unit SupplementaryGroups = [\"acme\"] and declare the group"
  ++ lib.optional (edge1.warnings != [])
  "edge1: warnings with tlsGroup set: ${builtins.toJSON edge1.warnings}"
  # The listen address the modules use follows the override.
  ++ lib.optional (!(builtins.elem 17481 ports) || builtins.elem 7481 ports)
  "cp1: the firewall opens ${builtins.toJSON ports}; expected the scheduler's overridden port 17481 instead of 7481"
  ++ lib.optional ((cp1.services.ultracloud.scheduler.listen or null)
    != {
      http = [
        {
          address = "::";
          port = 17481;
        }
      ];
    })
  "cp1: services.ultracloud.scheduler.listen is ${builtins.toJSON (cp1.services.ultracloud.scheduler.listen or null)}, expected the overridden [::]:17481"
  ++ lib.optional ((cp1.services.ultracloud.store.listen or null)
    != {
      client = [
        {
          address = "10.1.0.11";
          port = 2379;
        }
      ];
      peer = [
        {
          address = "10.1.0.11";
          port = 2380;
        }
      ];
      metrics = [
        {
          address = "10.1.0.11";
          port = 2381;
        }
      ];
    })
  "cp1: services.ultracloud.store.listen is ${builtins.toJSON (cp1.services.ultracloud.store.listen or null)}, expected the client, peer and metrics URLs of the manifest"
