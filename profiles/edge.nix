# Role profile of edge nodes: uc-dns and uc-lb answer the outside world and
# forward to instances on other nodes.
{lib, ...}: {
  boot.kernel.sysctl = {
    "net.ipv4.ip_forward" = lib.mkDefault 1;
    # Listeners may bind service addresses before they are assigned here.
    "net.ipv4.ip_nonlocal_bind" = lib.mkDefault 1;
    "net.core.somaxconn" = lib.mkDefault 65535;
  };
}
