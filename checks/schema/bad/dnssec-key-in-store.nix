# expect: cluster.dns.zones."fixture.test".dnssec.keyFile = "/nix/store/0000-key.pem" is not an absolute path outside the Nix store
{
  cluster.dns.zones."fixture.test".dnssec = {
    enable = true;
    keyFile = "/nix/store/0000-key.pem";
  };
}
