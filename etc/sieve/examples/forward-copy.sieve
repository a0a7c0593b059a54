# Keep a copy and forward to another address (procmail: `:0c` then `! addr`).
require ["copy"];

redirect :copy "alice.phone@example.net";
