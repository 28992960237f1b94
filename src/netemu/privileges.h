// Emulating a network needs two capabilities: CAP_SYS_ADMIN to create and
// enter network namespaces (unshare, setns) and CAP_NET_ADMIN to create
// links and shape them (ip, tc). Root has both.
#pragma once
#include <string>

namespace ddp::netemu {

// "" when this process has both in its effective set; otherwise what is
// missing, e.g. "CAP_NET_ADMIN and CAP_SYS_ADMIN".
std::string missing_capabilities();

// Throws ddp::UserError (the missing capabilities, and the fix) unless this
// process may emulate a network. Call it before creating anything.
void require_capabilities();

}  // namespace ddp::netemu
