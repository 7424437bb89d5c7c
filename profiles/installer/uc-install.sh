#!/usr/bin/env bash
# uc-install: run once by the installer ISO at boot. Phones home to the
# deployer with this machine's MAC addresses, DMI serial and disks; once the
# deployer recognises it, partitions and formats with the node's disko
# layout, installs the node's system from the deployer's signed cache and
# reboots into it (where uc-nix-agent takes over).
#
# Settings (the kernel command line wins over the file):
#   /etc/ultracloud/installer.json   {"cluster": …, "deployers": [url, …]}, rendered by mkCluster
#   uc.deployer=http://10.0.0.10:7480
#   uc.token=<enrollment token>      or the file /run/ultracloud/enrollment-token
#   uc.dry-run=1                     phone home and print the plan; change nothing
# Tests point UC_INSTALL_CMDLINE, UC_INSTALL_CONFIG and UC_INSTALL_RUN
# elsewhere (defaults: /proc/cmdline, /etc/ultracloud/installer.json,
# /run/ultracloud) and may set UC_INSTALL_RETRY_SECONDS.
set -euo pipefail
cmdline_file=${UC_INSTALL_CMDLINE:-/proc/cmdline}
config=${UC_INSTALL_CONFIG:-/etc/ultracloud/installer.json}
run=${UC_INSTALL_RUN:-/run/ultracloud}
retry=${UC_INSTALL_RETRY_SECONDS:-30}

log() { echo "uc-install: $*" >&2; }

cmdline() { # key: value of key=value on the kernel command line
  local word
  for word in $(cat "$cmdline_file"); do
    case $word in "$1="*) echo "${word#*=}" ;; esac
  done
}

deployers=$(cmdline uc.deployer)
if [ -z "$deployers" ] && [ -f "$config" ]; then
  deployers=$(jq -r '.deployers[]' "$config")
fi
[ -n "$deployers" ] || {
  log "no deployer: add uc.deployer=http://<deployer>:7480 to the kernel command line"
  exit 1
}

token=$(cmdline uc.token)
token_file=$run/enrollment-token
until [ -n "$token" ]; do
  if [ -s "$token_file" ]; then
    token=$(tr -d '[:space:]' <"$token_file")
  else
    log "waiting for the enrollment token: boot with uc.token=… or write it to $token_file"
    sleep 10
  fi
done

facts() {
  local macs serial disks
  macs=$(for dev in /sys/class/net/*; do
    [ -e "$dev/device" ] || continue # physical interfaces only
    cat "$dev/address"
  done | jq -R . | jq -s .)
  serial=$(cat /sys/class/dmi/id/product_serial 2>/dev/null || true)
  disks=$(lsblk --nodeps --noheadings --output NAME,TYPE | awk '$2 == "disk" {print "/dev/" $1}' | jq -R . | jq -s .)
  jq -n --argjson macs "$macs" --arg serial "$serial" --argjson disks "$disks" \
    '{macAddresses: $macs, dmiSerial: (if $serial == "" then null else $serial end), disks: $disks}'
}

plan=$run/plan.json
mkdir -p "$run"
while :; do
  body=$(facts)
  for deployer in $deployers; do
    code=$(curl --silent --show-error --max-time 30 --output "$plan.tmp" --write-out '%{http_code}' \
      --header "Authorization: Bearer $token" --header 'Content-Type: application/json' \
      --data "$body" "$deployer/api/v1/phone-home" || echo 000)
    case $code in
      200)
        mv "$plan.tmp" "$plan"
        break 2
        ;;
      202) log "$deployer: this machine is not declared yet (pending); facts: $body" ;;
      401)
        log "$deployer: enrollment token refused; boot with the right uc.token"
        exit 1
        ;;
      000) log "$deployer: unreachable" ;;
      *) log "$deployer answered $code: $(cat "$plan.tmp" 2>/dev/null)" ;;
    esac
  done
  sleep "$retry"
done

node=$(jq -r .node "$plan")
system=$(jq -r .system "$plan")
substituters=$(jq -r '.cacheUrls | join(" ")' "$plan")
keys=$(jq -r '.trustedPublicKeys | join(" ")' "$plan")
log "this machine is node $node; system $system"
if [ "$(cmdline uc.dry-run)" = 1 ]; then
  jq . "$plan"
  exit 0
fi

# disko reads a Nix file: wrap the layout the deployer sent.
jq .disko "$plan" >"$run/disko.json"
cat >"$run/disko.nix" <<'EOF'
{ disko.devices = builtins.fromJSON (builtins.readFile ./disko.json); }
EOF
log "partitioning and formatting with disko (this erases the disks of node $node)"
disko --mode destroy,format,mount --yes-wipe-all-disks "$run/disko.nix"

log "installing $system from $substituters"
nixos-install --root /mnt --system "$system" --no-root-passwd --no-channel-copy \
  --option substituters "$substituters" --option trusted-public-keys "$keys"

log "installed; rebooting into node $node"
systemctl reboot
