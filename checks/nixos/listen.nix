# Unit tests of modules/listen.nix, the parser of the daemons' listen
# addresses. Evaluates to the list of failures; [] when all pass.
{nixpkgsLib}: let
  lib = import nixpkgsLib;
  listen = import ../../modules/listen.nix {inherit lib;};
  parses = s: expected: let
    got = builtins.tryEval (listen.parse "test" s);
  in
    lib.optional (!got.success || got.value != expected)
    "parse ${builtins.toJSON s} gave ${
      if got.success
      then builtins.toJSON got.value
      else "an error"
    }, expected ${builtins.toJSON expected}";
  refuses = s:
    lib.optional (builtins.tryEval (builtins.deepSeq (listen.parse "test" s) null)).success
    "parse ${builtins.toJSON s} was accepted";
  # The option types accept exactly what the parser reads.
  matches = pattern: s: want:
    lib.optional ((builtins.match pattern s != null) != want)
    "${builtins.toJSON s} ${
      if want
      then "does not match"
      else "matches"
    } ${pattern}";
in
  parses "10.1.0.11:7480" {
    address = "10.1.0.11";
    port = 7480;
  }
  ++ parses "0.0.0.0:1" {
    address = "0.0.0.0";
    port = 1;
  }
  ++ parses "localhost:65535" {
    address = "localhost";
    port = 65535;
  }
  ++ parses "[::1]:7480" {
    address = "::1";
    port = 7480;
  }
  ++ parses "[fd00:1::11]:7481" {
    address = "fd00:1::11";
    port = 7481;
  }
  ++ parses "http://10.1.0.11:2379" {
    address = "10.1.0.11";
    port = 2379;
  }
  ++ parses "http://10.1.0.11:2380/" {
    address = "10.1.0.11";
    port = 2380;
  }
  ++ parses "https://[::1]:2381" {
    address = "::1";
    port = 2381;
  }
  ++ refuses "10.1.0.11"
  ++ refuses "::1:7480"
  ++ refuses "http://10.1.0.11"
  ++ refuses "ftp://10.1.0.11:21"
  ++ refuses "10.1.0.11:70000"
  ++ refuses "http://10.1.0.11:2379/v3"
  ++ matches listen.hostPortPattern "10.1.0.11:7480" true
  ++ matches listen.hostPortPattern "[::1]:7480" true
  ++ matches listen.hostPortPattern "http://10.1.0.11:7480" false
  ++ matches listen.urlPattern "http://10.1.0.11:2379" true
  ++ matches listen.urlPattern "http://[::1]:2379/" true
  ++ matches listen.urlPattern "10.1.0.11:2379" false
  ++ lib.optional (listen.ports {
      a = [
        {
          address = "::";
          port = 1;
        }
        {
          address = "::1";
          port = 2;
        }
      ];
      b = [
        {
          address = "10.0.0.1";
          port = 1;
        }
      ];
    }
    != [1 2]) "ports does not list each port once"
