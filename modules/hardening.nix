# systemd hardening shared by the network daemons that only need their own
# state directory and the network (no capabilities, no devices).
{
  NoNewPrivileges = true;
  ProtectSystem = "strict";
  ProtectHome = true;
  PrivateTmp = true;
  PrivateDevices = true;
  ProtectKernelTunables = true;
  ProtectKernelModules = true;
  ProtectControlGroups = true;
  RestrictAddressFamilies = ["AF_INET" "AF_INET6" "AF_UNIX"];
  RestrictNamespaces = true;
  LockPersonality = true;
  CapabilityBoundingSet = "";
  SystemCallFilter = ["@system-service"];
}
