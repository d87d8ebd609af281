# `ghostgen deploy` from one VM to another, against a real NixOS target:
# real sshd (root login off), sudo, systemd-run, switch-to-configuration,
# system profile and ghostbridge-doctor. The target's next generations are
# its own specialisations, already in its store: the deployer's `nix`
# answers `build` with the one a subtest picks and has nothing to `copy`
# (there is no binary cache in a VM check); everything after the copy is the
# real protocol. A generation whose firewall locks SSH out is rolled back by
# the target itself; one whose doctor finds a unit missing is rejected and
# rolled back at once; a healthy one is confirmed and becomes the boot default.
{
  pkgs,
  common,
  ...
}:
let
  # The spec the deployer holds: only its [deploy] settings and the user are
  # read by `ghostgen deploy`; the key is a placeholder (the test installs the
  # deployer's own key on the target at run time).
  spec = ''
    [host]
    name = "target"
    state_version = "25.11"

    [deploy]
    address = "target"

    [[users]]
    name = "ops"
    admin = true
    ssh_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q ops@desk"]
  '';
in
pkgs.testers.runNixOSTest {
  name = "ghostbridge-deploy";
  node.pkgsReadOnly = false;

  nodes.target =
    { lib, ... }:
    {
      imports = [ common ];
      services.ghostbridge = {
        enable = true;
        deploy.user = "ops";
      };
      users.users.ops = {
        isNormalUser = true;
        extraGroups = [ "wheel" ];
      };
      security.sudo.wheelNeedsPassword = false;
      # A test VM boots its kernel directly and has no ESP, so no boot loader
      # can be installed: `switch-to-configuration boot` then only records the
      # generation (as nixpkgs' switch test does), which is what is checked.
      boot.loader.systemd-boot.enable = lib.mkForce false;
      boot.loader.grub.enable = false;
      specialisation = {
        healthy.configuration.environment.etc."ghostbridge-generation".text = "healthy";
        # The firewall no longer lets SSH in: an operator would be locked out.
        locksOut.configuration = {
          environment.etc."ghostbridge-generation".text = "locks-out";
          services.openssh.openFirewall = lib.mkForce false;
        };
        # The network is fine, but the doctor misses a unit.
        unhealthy.configuration = {
          environment.etc."ghostbridge-generation".text = "unhealthy";
          services.ghostbridge.doctor.settings.units = lib.mkForce [
            "sshd.service"
            "ghostbridge-missing.service"
          ];
        };
      };
    };

  nodes.deployer =
    { pkgs, ... }:
    {
      imports = [ common ];
      environment.systemPackages = [ pkgs.ghostgen ];
      environment.etc."fleet/spec.toml".text = spec;
      # The operator's `nix`, for this check: `build` prints the generation the
      # subtest chose; `copy` has nothing to do (it is in the target's store).
      environment.etc."deploy-double/nix" = {
        mode = "0755";
        text = ''
          #!/bin/sh
          echo "nix $*" >> /tmp/nix.log
          case " $* " in
            *" build "*) cat /tmp/next-system ;;
            *" copy "*) ;;
            *) exit 1 ;;
          esac
        '';
      };
    };

  testScript =
    { nodes, ... }:
    ''
      start_all()
      target.wait_for_unit("sshd.service")
      target.wait_for_unit("multi-user.target")
      deployer.wait_for_unit("multi-user.target")

      # The deployer's key, trusted by ops on the target (a file that
      # activation leaves alone).
      deployer.succeed("install -d -m 700 /root/.ssh && ssh-keygen -q -t ed25519 -N ''' -f /root/.ssh/id_ed25519")
      key = deployer.succeed("cat /root/.ssh/id_ed25519.pub").strip()
      target.succeed(
          "install -d -m 700 -o ops -g users /home/ops/.ssh"
          f" && echo '{key}' > /home/ops/.ssh/authorized_keys"
          " && chown ops:users /home/ops/.ssh/authorized_keys && chmod 600 /home/ops/.ssh/authorized_keys"
      )
      deployer.succeed("ssh -o StrictHostKeyChecking=accept-new -o BatchMode=yes ops@target true")

      deployer.succeed("install -d /root/fleet && cp /etc/fleet/spec.toml /root/fleet/ && ghostgen build /root/fleet/spec.toml")

      original = target.succeed("readlink -f /run/current-system").strip()
      generations = {
          name: target.succeed(f"readlink -f /run/current-system/specialisation/{name}").strip()
          for name in ["healthy", "locksOut", "unhealthy"]
      }

      def running():
          return target.succeed("readlink -f /run/current-system").strip()

      def boot_default():
          return target.succeed("readlink -f /nix/var/nix/profiles/system").strip()

      def deploy(name, timeout):
          deployer.succeed(f"echo {generations[name]} > /tmp/next-system")
          status, out = deployer.execute(
              "PATH=/etc/deploy-double:$PATH"
              f" ghostgen deploy /root/fleet/spec.toml --confirm-timeout {timeout} 2>&1"
          )
          print(out)
          return status, out

      # As on an installed host, the running system is generation 1 of the system profile.
      target.succeed("nix-env --profile /nix/var/nix/profiles/system --set $(readlink -f /run/current-system)")
      first_boot_default = boot_default()
      assert first_boot_default == original, first_boot_default

      with subtest("a generation that locks SSH out is rolled back by the target itself"):
          status, out = deploy("locksOut", "20s")
          assert status == 1, out
          assert "rolled back: no confirmation within 20s" in out, out
          assert running() == original
          assert boot_default() == first_boot_default
          target.fail("test -e /etc/ghostbridge-generation")
          deployer.succeed("ssh -o BatchMode=yes ops@target true")

      with subtest("an unhealthy generation is rejected and rolled back at once"):
          status, out = deploy("unhealthy", "5m")
          assert status == 1, out
          assert "unhealthy" in out and "ghostbridge-missing.service" in out, out
          assert "rolled back" in out, out
          assert running() == original
          assert boot_default() == first_boot_default

      with subtest("a healthy generation is confirmed and becomes the boot default"):
          status, out = deploy("healthy", "2m")
          assert status == 0, out
          row = next(line.split() for line in out.splitlines() if line.startswith("target "))
          assert row[:5] == ["target", "1", "2", "healthy", "committed"], out
          assert running() == generations["healthy"]
          assert boot_default() == generations["healthy"]
          assert target.succeed("cat /etc/ghostbridge-generation").strip() == "healthy"

      with subtest("each agent ran in its own transient unit, collected once it ended"):
          journal = target.succeed("journalctl --no-pager -o cat -u 'ghostbridge-deploy-*'")
          assert "committed" in journal and "rolled-back" in journal, journal
          target.fail("systemctl list-units --all --plain --no-legend 'ghostbridge-deploy-*' | grep -q .")
    '';
}
