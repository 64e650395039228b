// The program handler_safety_test.sh disassembles: it takes the addresses of the library's two
// signal handlers, exactly the functions the pool installs with sigaction, so the compiler emits
// them out of line. It is linked but never run.
#include <supervise.hpp>

using handler = void (*)(int);

// volatile: the addresses are really stored, so the handlers cannot be optimised away.
handler volatile installed_handlers[] = {
    &supervise::detail::on_signal,
    &supervise::detail::on_destroy_deadline,
};

int main(int argc, char**) { return installed_handlers[argc % 2] == nullptr ? 1 : 0; }
