// marina-keygen: makes a CurveZMQ keypair for a coordinator or a worker. Run it on the device
// that will use the key, so the secret never travels; copy only NAME.pub.

#include <iostream>

#include <CLI/CLI.hpp>

#include "marina/security/keys.h"
#include "marina/wire/version.h"

int main(int argc, char** argv) {
  CLI::App app{
      "marina-keygen: write a CurveZMQ keypair: NAME.key (secret, mode 0600) and NAME.pub"};
  app.set_version_flag("--version", marina::wire::version_line("marina-keygen"));
  std::string name;
  app.add_option("NAME", name, "path prefix of the two files (never overwritten)")->required();
  CLI11_PARSE(app, argc, argv);
  try {
    const auto keys = marina::security::generate_keypair();
    marina::security::write_keypair(name, keys);
    std::cout << name << ".key (secret) and " << name << ".pub: " << keys.public_key
              << " (fingerprint " << marina::security::fingerprint(keys.public_key) << ")\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "marina-keygen: error: " << e.what() << '\n';
    return 1;
  }
}
