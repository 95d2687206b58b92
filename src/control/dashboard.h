// The migration dashboard (GET / of the admin listener, PRODUCT.md
// "Operating a running router"): one HTML page with its CSS and script
// inline, compiled in from src/control/dashboard/index.html. It loads no
// outside resource; everything it shows comes from /api/v1 of the same
// listener, with the token the user gives it.
#pragma once

#include <string>
#include <string_view>

namespace strangler {

std::string_view DashboardPage();
// The Content-Security-Policy the page is served with: its inline scripts
// and styles by their SHA-256, requests to its own origin only.
const std::string& DashboardPolicy();

}  // namespace strangler
