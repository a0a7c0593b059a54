# An out-of-office reply, at most once a week to each sender. It is never
# sent to mailing lists, automatic mail (Auto-Submitted, Precedence: bulk),
# MAILER-DAEMON, or mail that does not name you in To/Cc.
require ["vacation"];

vacation
    :days 7
    :subject "Out of the office"
    :addresses ["alice@example.org", "a.martin@example.org"]
"I am away until Monday 12 and read no mail.
For urgent matters, write to bob@example.org.";
