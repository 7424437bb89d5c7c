# Unit tests of the schema's helpers; evaluates to [] when all pass, else to
# the failing cases (lib.runTests format).
{nixpkgsLib}: let
  lib = import nixpkgsLib;
  ultracloud = import ../../lib {inherit lib;};
  inherit (ultracloud) net types;
in
  lib.runTests {
    testIPv4 = {
      expr = map net.isIPv4 ["10.0.0.1" "255.255.255.255" "256.0.0.1" "10.0.0" "::1"];
      expected = [true true false false false];
    };
    testIPv6 = {
      expr = map net.isIPv6 ["::1" "fd00::10" "2001:db8::1:2" "10.0.0.1" "1::2::3"];
      expected = [true true true false false];
    };
    testCidrContains = {
      expr = [
        (net.cidrContains "10.0.0.0/24" "10.0.0.255")
        (net.cidrContains "10.0.0.0/24" "10.0.1.0")
        (net.cidrContains "10.0.0.0/8" "10.200.3.4")
        (net.cidrContains "0.0.0.0/0" "192.168.1.1")
        (net.cidrContains "10.0.0.4/30" "10.0.0.7")
        (net.cidrContains "10.0.0.4/30" "10.0.0.8")
      ];
      expected = [true false true true true false];
    };
    testCidrParse = {
      expr = map net.isCidr ["10.0.0.0/24" "10.0.0.0/33" "fd00::/64" "10.0.0.0"];
      expected = [true false true false];
    };
    testDnsLabel = {
      expr = map types.isDnsLabel ["node01" "a" "-a" "a-" "Node" "a_b" (lib.concatStrings (lib.replicate 64 "a"))];
      expected = [true true false false false false false];
    };
    testDnsName = {
      expr = map types.isDnsName ["example.com" "example.com." "a..b" "0.10.in-addr.arpa" ""];
      expected = [true true false true false];
    };
    testRecordName = {
      expr = map types.isRecordName ["@" "www" "_http._tcp" "*" "*.apps" "a b" "-x"];
      expected = [true true true true true false false];
    };
    testSecretPath = {
      expr = map types.isSecretPath ["/run/secrets/x" "relative" "/nix/store/abc-key" ./unit.nix];
      expected = [true false false false];
    };
  }
