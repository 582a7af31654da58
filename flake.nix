{
  description = "hive-core: the host daemon of an agent swarm, and its NixOS module";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      # Name, version and dependencies come from pyproject.toml, the one place they are kept.
      project = (builtins.fromTOML (builtins.readFile ./pyproject.toml)).project;
    in
    {
      packages = forAllSystems (pkgs: rec {
        hive-core = pkgs.python3Packages.buildPythonApplication {
          pname = project.name;
          version = project.version;
          src = nixpkgs.lib.cleanSource ./.;
          format = "pyproject";
          nativeBuildInputs = [ pkgs.python3Packages.setuptools ];
          # pyproject.toml's `dependencies`, by their nixpkgs names.
          propagatedBuildInputs = with pkgs.python3Packages; [
            trio
            attrs
            cattrs
            orjson
            click
            sqlite-utils
            hypercorn
            starlette
            mcp
          ];
          # The test suite starts daemons, agents and sockets; it runs in CI (.ci/run), not in
          # the build sandbox. Importing both packages is checked here.
          doCheck = false;
          pythonImportsCheck = [ "hive_wire" "hive_core" "hive_core.surfaces.cli.main" ];
          meta = {
            description = project.description;
            license = nixpkgs.lib.licenses.mit;
            mainProgram = "hive-core";
            platforms = nixpkgs.lib.platforms.linux;
          };
        };
        default = hive-core;
      });

      # The module, with its package defaulting to this flake's.
      nixosModules.default = { lib, pkgs, ... }: {
        imports = [ ./nix/module.nix ];
        services.hive-core.package =
          lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      };
      nixosModules.hive-core = self.nixosModules.default;
    };
}
