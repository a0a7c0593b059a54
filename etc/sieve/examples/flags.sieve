# Mark messages from the boss as important (\Flagged), and mark a robot's
# reports as read, filed away.
require ["imap4flags", "fileinto"];

if address :is "from" "boss@example.org" {
    addflag "\\Flagged";
}
if header :contains "subject" "daily report" {
    fileinto :flags "\\Seen" "Reports";
}
