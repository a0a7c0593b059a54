# Global script: file the messages the spam checks marked into Junk.
# Enable it in facteur.toml:
#   [sieve]
#   before = ["/etc/facteur/sieve/junk.sieve"]
# facteur-smtpd (its quarantine policy) and rspamd both write the mark
# "X-Spam: Yes". Users' own scripts still run after this one for the mail
# it keeps (a message filed into Junk is not kept: nothing else runs).
require ["fileinto", "special-use", "mailbox"];

if header :is "X-Spam" "Yes" {
    fileinto :specialuse "\\Junk" :create "Junk";
    stop;
}
