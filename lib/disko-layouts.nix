# Named disk layouts for `cluster.nodes.<name>.install.layout`. Each is a
# function of the target disk returning a disko `devices` tree.
let
  # EFI system partition, mounted at /boot.
  esp = {
    type = "EF00";
    size = "512M";
    content = {
      type = "filesystem";
      format = "vfat";
      mountpoint = "/boot";
      mountOptions = ["umask=0077"];
    };
  };
in {
  # GPT: EFI system partition and one ext4 root.
  standard = disk: {
    disk.main = {
      type = "disk";
      device = disk;
      content = {
        type = "gpt";
        partitions = {
          ESP = esp;
          root = {
            size = "100%";
            content = {
              type = "filesystem";
              format = "ext4";
              mountpoint = "/";
            };
          };
        };
      };
    };
  };

  # GPT: EFI system partition, LVM with root and a separate volume for
  # /var/lib (store data, VM images) so either can be grown on its own.
  lvm = disk: {
    disk.main = {
      type = "disk";
      device = disk;
      content = {
        type = "gpt";
        partitions = {
          ESP = esp;
          pv = {
            size = "100%";
            content = {
              type = "lvm_pv";
              vg = "pool";
            };
          };
        };
      };
    };
    lvm_vg.pool = {
      type = "lvm_vg";
      lvs = {
        root = {
          size = "40G";
          content = {
            type = "filesystem";
            format = "ext4";
            mountpoint = "/";
          };
        };
        varlib = {
          size = "100%FREE";
          content = {
            type = "filesystem";
            format = "ext4";
            mountpoint = "/var/lib";
          };
        };
      };
    };
  };
}
