// tern — the command-line client.
//
//   (every command also takes --server HOST:PORT, a login: --user NAME with
//   the password in $TERN_PASSWORD or --password-file FILE, or a token in
//   $TERN_TOKEN or --token-file FILE, and the TLS flags)
//   tern [--server HOST:PORT] pub TOPIC [MESSAGE...]
//   tern [--server HOST:PORT] sub TOPIC [--subscription NAME] [--count N]
//        [--from POSITION] [--timeout SECONDS] [--prefetch N]
//   tern [--server HOST:PORT] topics list | info TOPIC | delete TOPIC
//   tern [--server HOST:PORT] topics create TOPIC [--max-age DURATION]
//        [--max-bytes SIZE] [--max-messages N] [--work-queue]
//        [--dead-letter-expired]
//   tern [--server HOST:PORT] topics alter TOPIC [--max-age DURATION|none]
//        [--max-bytes SIZE|none] [--max-messages N|none]
//        [--[no-]dead-letter-expired]
//   tern [--server HOST:PORT] subs reset TOPIC NAME --to POSITION
//   tern [--server HOST:PORT] subs delete TOPIC NAME
//   tern [--server HOST:PORT] request TOPIC MESSAGE [--timeout DURATION]
//   tern [--server HOST:PORT] reply TOPIC --exec CMD [--subscription NAME]
//        [--count N]
//   tern [--server HOST:PORT] top [--once] [--json] [--interval SECONDS]
//
// Exit status: 0 on success, 1 when the broker or the connection fails, 2 for
// a bad command line. Errors go to stderr as "tern: <what went wrong>"; for a
// bad command line a second line says which --help to read.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "credentials.h"
#include "tern_cli.h"

namespace tern::tool {
namespace {

constexpr const char* kDefaultServer = "127.0.0.1:7411";

// "topics create": the names from below `tern` down to `command`.
std::string command_path(const CLI::App* command) {
  std::string path;
  for (; command->get_parent() != nullptr; command = command->get_parent()) {
    path =
        path.empty() ? command->get_name() : command->get_name() + " " + path;
  }
  return path;
}

// "TOPIC", "[MESSAGE...]", "--to POSITION".
std::string argument_usage(const CLI::Option* option) {
  if (!option->get_positional()) {
    return option->get_name() + " " + option->get_type_name();
  }
  std::string usage = option->get_name();
  if (option->get_expected_max() > 1) usage += "...";
  return option->get_required() ? usage : "[" + usage + "]";
}

// "subs reset TOPIC NAME --to POSITION": a command with its arguments and
// required options.
std::string command_form(const CLI::App* command) {
  std::string form = command_path(command);
  for (const CLI::Option* option : command->get_options()) {
    if (option->get_positional() || option->get_required()) {
      form += " " + argument_usage(option);
    }
  }
  return form;
}

// The commands a help page lists: those below `group` that are not hidden,
// groups such as `topics` replaced by their own commands.
std::vector<const CLI::App*> leaf_commands(const CLI::App* group) {
  std::vector<const CLI::App*> leaves;
  for (const CLI::App* command : group->get_subcommands({})) {
    if (command->get_group().empty()) continue;
    if (command->get_subcommands({}).empty()) {
      leaves.push_back(command);
    } else {
      for (const CLI::App* leaf : leaf_commands(command))
        leaves.push_back(leaf);
    }
  }
  return leaves;
}

// Lists every command with its arguments ("topics info TOPIC"), where CLI11
// would list "topics" alone, and shows positional arguments by name only
// ("TOPIC", not "TOPIC TEXT REQUIRED": the usage line says that).
class Formatter : public CLI::Formatter {
 public:
  Formatter() { label("SUBCOMMAND", "COMMAND"); }

  std::string make_option_opts(const CLI::Option* option) const override {
    return option->get_positional() ? ""
                                    : CLI::Formatter::make_option_opts(option);
  }

  std::string make_subcommands(const CLI::App* app,
                               CLI::AppFormatMode) const override {
    std::vector<const CLI::App*> commands = leaf_commands(app);
    if (commands.empty()) return "";
    std::string out = "\nCommands:\n";
    const size_t width = get_column_width();
    for (const CLI::App* command : commands) {
      std::string form = "  " + command_form(command);
      out += form.size() < width ? form + std::string(width - form.size(), ' ')
                                 : form + "\n" + std::string(width, ' ');
      for (char c : command->get_description()) {
        out += c;
        if (c == '\n') out += std::string(width, ' ');
      }
      out += "\n";
    }
    return out;
  }
};

// `word`s joined as "a, b or c".
std::string one_of(const std::vector<std::string>& words) {
  std::string text;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i > 0) text += i + 1 == words.size() ? " or " : ", ";
    text += words[i];
  }
  return text;
}

// What a CLI::RequiredError is about. CLI11 says "TOPIC is required" or "A
// subcommand is required"; this names what is missing the way the tool always
// has, and for a command of a group such as `topics` lists the forms its
// commands take.
std::string what_is_missing(const CLI::App* command) {
  if (!command->get_subcommands({}).empty()) {
    // A word where the command's name should be.
    std::vector<std::string> extra = command->remaining();
    if (!extra.empty()) {
      bool option = extra[0].rfind("-", 0) == 0;
      return (option ? "unknown option '" : "unknown command '") + extra[0] +
             "'";
    }
    std::vector<std::string> names;
    for (const CLI::App* sub : command->get_subcommands({})) {
      if (!sub->get_group().empty()) names.push_back(sub->get_name());
    }
    return "missing a command: " + one_of(names);
  }
  for (const CLI::Option* option : command->get_options()) {
    if (!option->get_required() || option->count() > 0) continue;
    std::string missing = "missing " + argument_usage(option);
    const CLI::App* group = command->get_parent();
    if (group->get_parent() == nullptr) return missing;
    std::vector<std::string> forms;
    for (const CLI::App* sibling : leaf_commands(group)) {
      forms.push_back("'" + command_form(sibling) + "'");
    }
    return missing + "; want " + one_of(forms);
  }
  return "missing an argument";
}

// Reports a bad command line and returns its exit status, 2.
int usage_error(const CLI::App& tern, const CLI::ParseError& error) {
  // The command whose arguments were being read.
  const CLI::App* command = &tern;
  while (!command->get_subcommands().empty()) {
    command = command->get_subcommands().front();
  }
  std::string problem = dynamic_cast<const CLI::RequiredError*>(&error)
                            ? what_is_missing(command)
                            : error.what();
  std::string help = command_path(command);
  help = help.empty() ? "tern --help" : "tern " + help + " --help";
  std::fprintf(stderr, "tern: %s\nRun '%s' for usage.\n", problem.c_str(),
               help.c_str());
  return 2;
}

// Who to connect as (see cli/credentials.h and connect()).
std::string login_user, password_file, token_file;
// The TLS flags (add_tls_options).
ClientOptions tls_flags;

// Adds --server and --user to every command, so that they can come before
// or after a command's name (CLI11 takes an option only from the command it
// belongs to) and each --help lists them.
void add_connection_options(CLI::App* command, std::string* server) {
  command
      ->add_option("--server", *server,
                   std::string("broker address (default: $TERN_SERVER,\n"
                               "else ") +
                       kDefaultServer + ")")
      ->type_name("HOST:PORT");
  command
      ->add_option("--user", login_user,
                   "log in as this user; the password is read\n"
                   "from $TERN_PASSWORD or --password-file")
      ->type_name("NAME");
  command->add_option("--password-file", password_file,
                      "read --user's password from this file")
      ->type_name("FILE");
  command->add_option("--token-file", token_file,
                      "log in with the token in this file (else\n"
                      "$TERN_TOKEN, if set)")
      ->type_name("FILE");
  add_tls_options(command, &tls_flags);
  for (CLI::App* sub : command->get_subcommands({})) {
    add_connection_options(sub, server);
  }
}

}  // namespace

std::unique_ptr<Client> connect(const std::string& server,
                                ClientOptions options) {
  copy_tls_options(tls_flags, &options);
  cli::Login login;
  std::string why;
  if (!cli::read_login(login_user, password_file, token_file, &login, &why))
    throw Error(ErrorCode::kInvalidArgument, why);
  options.user = login.user;
  options.password = login.password;
  options.token = login.token;
  return Client::connect(server, options);
}

}  // namespace tern::tool

int main(int argc, char** argv) {
  using namespace tern::tool;
  CLI::App tern(
      "Publishes to and subscribes on a Tern broker, and manages "
      "its topics.",
      "tern");
  // Set before the commands are added: they copy both.
  tern.formatter(std::make_shared<Formatter>());
  // As before, the last of a repeated option wins.
  tern.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  // Exactly one: a message or a topic named like a command ("tern pub t
  // sub") is then an argument, not a second command.
  tern.require_subcommand(1);

  Run run;
  add_pubsub_commands(&tern, &run);
  add_admin_commands(&tern, &run);
  add_request_commands(&tern, &run);
  add_top_command(&tern, &run);
  // `tern help`, as `tern --help`. Silent: then the help printed is the
  // program's, not the one of a command called help.
  tern.add_subcommand("help", "")
      ->group("")
      ->silent()
      ->parse_complete_callback([] { throw CLI::CallForHelp(); });
  std::string server;
  add_connection_options(&tern, &server);
  tern.footer("Run 'tern COMMAND --help' for the options of a command.");

  try {
    tern.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help is a ParseError too, one that exits 0 after printing the help.
    if (e.get_exit_code() == 0) return tern.exit(e);
    return usage_error(tern, e);
  }

  if (server.empty()) {
    const char* env = std::getenv("TERN_SERVER");
    server = (env != nullptr && *env != '\0') ? env : kDefaultServer;
  }
  try {
    return run(server);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tern: %s\n", e.what());
    return 1;
  }
}
