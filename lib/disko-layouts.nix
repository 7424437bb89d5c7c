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
  ext4 = mountpoint: {
    type = "filesystem";
    format = "ext4";
    inherit mountpoint;
  };
  # The disk as GPT: the EFI system partition and `partitions`.
  gpt = disk: partitions: {
    type = "disk";
    device = disk;
    content = {
      type = "gpt";
      partitions = {ESP = esp;} // partitions;
    };
  };
in {
  # GPT: EFI system partition and one ext4 root.
  standard = disk: {
    disk.main = gpt disk {
      root = {
        size = "100%";
        content = ext4 "/";
      };
    };
  };

  # GPT: EFI system partition, LVM with root and a separate volume for
  # /var/lib (store data, VM images) so either can be grown on its own.
  lvm = disk: {
    disk.main = gpt disk {
      pv = {
        size = "100%";
        content = {
          type = "lvm_pv";
          vg = "pool";
        };
      };
    };
    lvm_vg.pool = {
      type = "lvm_vg";
      lvs = {
        root = {
          size = "40G";
          content = ext4 "/";
        };
        varlib = {
          size = "100%FREE";
          content = ext4 "/var/lib";
        };
      };
    };
  };
}
