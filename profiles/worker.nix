# Role profile of worker nodes: they run service instances, each a transient
# systemd unit started by uc-node-agent (enabled from the manifest).
{lib, ...}: {
  boot.kernel.sysctl = {
    # Instances watch files and open many sockets.
    "fs.inotify.max_user_instances" = lib.mkDefault 1024;
    "fs.inotify.max_user_watches" = lib.mkDefault 524288;
  };
}
