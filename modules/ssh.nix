# OpenSSH, hardened: public keys only (Ed25519), no passwords, no keyboard-
# interactive login, no root login, an Ed25519 host key only; the firewall is
# on and opens only the SSH port (other ports are opened by the host's spec).
{
  config,
  lib,
  ...
}:
let
  inherit (lib) mkIf mkDefault;
  cfg = config.services.ghostbridge;
  hostKeyAlgorithms = [
    "ssh-ed25519"
    "ssh-ed25519-cert-v01@openssh.com"
  ];
  # Also Ed25519 on a security key (FIDO).
  userKeyAlgorithms = hostKeyAlgorithms ++ [
    "sk-ssh-ed25519@openssh.com"
    "sk-ssh-ed25519-cert-v01@openssh.com"
  ];
in
{
  config = mkIf cfg.enable {
    networking.firewall.enable = true;

    services.openssh = {
      enable = mkDefault true;
      openFirewall = mkDefault true;
      hostKeys = [
        {
          type = "ed25519";
          path = "/etc/ssh/ssh_host_ed25519_key";
        }
      ];
      settings = {
        PasswordAuthentication = false;
        KbdInteractiveAuthentication = false;
        PermitRootLogin = "no";
        # Plain strings: nixpkgs renders list values only for a few known keys.
        PubkeyAcceptedAlgorithms = lib.concatStringsSep "," userKeyAlgorithms;
        HostKeyAlgorithms = lib.concatStringsSep "," hostKeyAlgorithms;
      };
    };
  };
}
