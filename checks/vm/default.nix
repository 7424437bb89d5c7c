# NixOS VM tests (`pkgs.testers.runNixOSTest`), part of `nix flake check`
# where nixpkgs can be downloaded. Each test node is a node of a small
# cluster rendered by mkCluster, with that node's modules (ours, its role
# profiles). The test driver gives node i (in name order) 192.168.1.i.
{
  pkgs,
  self,
}: let
  inherit (pkgs) lib;
  # A key for these tests only: the deployer signs its cache with it and the
  # nodes trust it. Not a secret of any real cluster.
  testSecretKey = "uc-vm-test-1:kzhYCmTo30VGIWDzdmqColUmFL91VJwLzhbZQ9/DEM/RK1nnWK8pC9z6gLaggswbqbbZhvFAuqkIF8NEkniYDw==";
  testPublicKey = "uc-vm-test-1:0StZ51ivKQvc+oC2oILMG6m22YbxQLqpCBfDRJJ4mA8=";

  mkTestCluster = name: nodes: extra:
    self.lib.mkCluster {
      modules = [
        {
          cluster =
            {
              inherit name nodes;
              networks.management = {
                cidr = "192.168.1.0/24";
                resolvers = [];
              };
              deployer.cache.publicKeys = [testPublicKey];
            }
            // extra;
        }
      ];
    };

  # The test VMs boot their own disks: no install plans.
  testNode = address: roles: {
    inherit roles;
    addresses = [address];
    identity.macAddresses = [];
  };

  vmNode = cluster: name: {
    imports = cluster.nodeModules.${name};
    environment.systemPackages = [pkgs.curl pkgs.etcd];
    virtualisation.memorySize = 1536;
  };

  manifestFile = cluster: pkgs.writeText "manifest.json" (builtins.toJSON cluster.manifest);

  # Python helpers shared by the test scripts.
  helpers = ''
    def provision_deployer(m):
        # The deployer's secrets live in its state dir, never in the store.
        m.succeed(
            "install -d -m 700 /var/lib/ultracloud/deployer",
            "printf %s '${testSecretKey}' > /var/lib/ultracloud/deployer/cache-signing.key",
            "printf %s vm-test-token > /var/lib/ultracloud/deployer/enrollment-token",
            "chown -R ultracloud-deployer: /var/lib/ultracloud/deployer",
            "chmod 600 /var/lib/ultracloud/deployer/*",
            "systemctl restart uc-deployer",
        )

    def sign_closure(m, path):
        # What installing from the deployer's cache leaves behind: the
        # closure signed by the cluster's key (nix-agent refuses anything
        # a trusted key did not sign).
        m.succeed(
            "printf %s '${testSecretKey}' > /run/test-signing.key",
            f"nix --extra-experimental-features nix-command store sign --recursive --key-file /run/test-signing.key {path}",
            "rm /run/test-signing.key",
        )
  '';

  single = mkTestCluster "vm-single" {node01 = testNode "192.168.1.1" ["control-plane" "worker" "edge"];} {
    services.hello = {
      command = ["/bin/sh" "-c" "exec ${pkgs.python3}/bin/python3 -m http.server --bind \"$UC_ADDRESS\" \"$UC_PORT_HTTP\""];
      ports.http.port = 8080;
      healthCheck = {
        type = "http";
        path = "/";
      };
    };
  };

  store3 = mkTestCluster "vm-store" {
    cp1 = testNode "192.168.1.1" ["control-plane"];
    cp2 = testNode "192.168.1.2" ["control-plane"];
    cp3 = testNode "192.168.1.3" ["control-plane"];
  } {};

  rollback =
    mkTestCluster "vm-rollback" {
      cp1 = testNode "192.168.1.1" ["control-plane"];
      worker1 = testNode "192.168.1.2" ["worker"];
    } {
      rollout = {
        canary = ["worker1"];
        healthGateTimeoutSeconds = 120;
        healthChecks = [
          {
            name = "broken-unit-not-failed";
            type = "exec";
            command = ["/bin/sh" "-c" "! systemctl is-failed --quiet broken.service"];
          }
        ];
      };
    };
in {
  # One node: store, deployer, nix-agent converge; a service instance runs
  # as a transient systemd unit and answers.
  vm-single-node = pkgs.testers.runNixOSTest {
    name = "ultracloud-single-node";
    nodes.node01 = vmNode single "node01";
    testScript = {nodes, ...}: ''
      ${helpers}
      system = "${nodes.node01.system.build.toplevel}"
      node01.start()
      node01.wait_for_unit("uc-store.service")
      node01.wait_until_succeeds("curl -sf http://192.168.1.1:2381/health")
      provision_deployer(node01)
      node01.wait_until_succeeds("curl -sf http://192.168.1.1:7480/health")
      node01.wait_for_unit("uc-nix-agent.service")
      sign_closure(node01, system)
      node01.succeed(f"uc deploy ${manifestFile single} --deployer http://192.168.1.1:7480 --system node01={system}")
      node01.wait_until_succeeds("uc rollout status --deployer http://192.168.1.1:7480 | grep -q Succeeded", timeout=300)
      node01.succeed("ETCDCTL_API=3 etcdctl --endpoints http://192.168.1.1:2379 get /uc/v1/nodes/node01/observed-system | grep -q healthy")
      # The scheduler placed hello; the node-agent runs it with systemd-run.
      node01.wait_until_succeeds("systemctl is-active uc-hello-0.service", timeout=120)
      node01.wait_until_succeeds("curl -sf http://192.168.1.1:8080/")
      node01.wait_until_succeeds("uc services --deployer http://192.168.1.1:7480 | grep -q 'hello-0 .* healthy'")
      # An agent restart adopts the instance instead of starting another.
      pid = node01.succeed("systemctl show -p MainPID --value uc-hello-0.service").strip()
      node01.succeed("systemctl restart uc-node-agent.service")
      node01.sleep(5)
      assert node01.succeed("systemctl show -p MainPID --value uc-hello-0.service").strip() == pid
    '';
  };

  # Three store members; one crashes, the other two go on; it catches up.
  vm-store-3-nodes = pkgs.testers.runNixOSTest {
    name = "ultracloud-store-3-nodes";
    nodes = lib.genAttrs ["cp1" "cp2" "cp3"] (vmNode store3);
    testScript = ''
      all = "http://192.168.1.1:2379,http://192.168.1.2:2379,http://192.168.1.3:2379"
      start_all()
      for m in [cp1, cp2, cp3]:
          m.wait_for_unit("uc-store.service")
      cp1.wait_until_succeeds(f"ETCDCTL_API=3 etcdctl --endpoints {all} put /test/a 1")
      cp1.crash()
      cp2.wait_until_succeeds(
          "ETCDCTL_API=3 etcdctl --endpoints http://192.168.1.2:2379,http://192.168.1.3:2379 put /test/b 2",
          timeout=30,
      )
      cp1.start()
      cp1.wait_for_unit("uc-store.service")
      cp1.wait_until_succeeds(
          "ETCDCTL_API=3 etcdctl --endpoints http://192.168.1.1:2379 get --consistency=s --print-value-only /test/b | grep -qx 2"
      )
      cp1.succeed("ETCDCTL_API=3 etcdctl --endpoints http://192.168.1.1:2379 get --print-value-only /test/a | grep -qx 1")
    '';
  };

  # A rollout whose new system fails its health check: the canary rolls
  # itself back and the deployer reverts it.
  vm-rollout-rollback = pkgs.testers.runNixOSTest {
    name = "ultracloud-rollout-rollback";
    nodes = {
      cp1 = vmNode rollback "cp1";
      worker1 = {
        imports = [(vmNode rollback "worker1")];
        specialisation.bad.configuration.systemd.services.broken = {
          wantedBy = ["multi-user.target"];
          serviceConfig.Type = "oneshot";
          script = "exit 1";
        };
      };
    };
    testScript = {nodes, ...}: ''
      ${helpers}
      good = "${nodes.worker1.system.build.toplevel}"
      bad = good + "/specialisation/bad"
      deployer = "--deployer http://192.168.1.1:7480"
      start_all()
      cp1.wait_for_unit("uc-store.service")
      provision_deployer(cp1)
      cp1.wait_until_succeeds("curl -sf http://192.168.1.1:7480/health")
      worker1.wait_for_unit("uc-nix-agent.service")
      sign_closure(worker1, good)
      cp1.succeed(f"uc deploy ${manifestFile rollback} {deployer} --system worker1={good}")
      cp1.wait_until_succeeds(f"uc rollout status {deployer} | grep -q Succeeded", timeout=300)
      cp1.succeed(f"uc deploy ${manifestFile rollback} {deployer} --system worker1={bad}")
      cp1.wait_until_succeeds(f"uc rollout status {deployer} | grep -q Failed", timeout=300)
      worker1.wait_until_succeeds(f"test $(readlink -f /run/current-system) = {good}", timeout=120)
      worker1.fail("systemctl is-active broken.service")
    '';
  };
}
