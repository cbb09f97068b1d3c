//! robots.txt (RFC 9309): the group for our user agent (or `*`), and the
//! longest matching `Allow`/`Disallow` rule decides; `Allow` wins a tie.
//! A robots.txt that is missing (4xx) allows everything; one that cannot
//! be read (5xx, unreachable) refuses, as the RFC asks.

use url::Url;

/// The rules of one site for one user agent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Robots {
    /// `(allow, path pattern)`.
    rules: Vec<(bool, String)>,
}

impl Robots {
    /// Reads the rules of the group that names `product` (the user agent's
    /// first token, case-insensitive), else of the `*` group.
    pub fn parse(text: &str, product: &str) -> Self {
        let product = product.to_ascii_lowercase();
        let mut specific: Option<Vec<(bool, String)>> = None;
        let mut any: Option<Vec<(bool, String)>> = None;
        // Agents of the group being read, and whether its rules started.
        let mut agents: Vec<String> = Vec::new();
        let mut rules: Vec<(bool, String)> = Vec::new();
        let mut in_rules = false;
        let mut finish = |agents: &[String], rules: &[(bool, String)]| {
            for agent in agents {
                if *agent == "*" {
                    any.get_or_insert_with(Vec::new).extend_from_slice(rules);
                } else if !product.is_empty() && product.starts_with(agent.as_str()) {
                    specific
                        .get_or_insert_with(Vec::new)
                        .extend_from_slice(rules);
                }
            }
        };
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            match key.as_str() {
                "user-agent" => {
                    if in_rules {
                        finish(&agents, &rules);
                        agents.clear();
                        rules.clear();
                        in_rules = false;
                    }
                    agents.push(value.to_ascii_lowercase());
                }
                "allow" | "disallow" => {
                    in_rules = true;
                    // An empty Disallow allows everything: no rule.
                    if !value.is_empty() {
                        rules.push((key == "allow", value.to_owned()));
                    }
                }
                _ => {}
            }
        }
        finish(&agents, &rules);
        Self {
            rules: specific.or(any).unwrap_or_default(),
        }
    }

    /// Whether `url`'s path (and query) may be fetched.
    pub fn allows(&self, url: &Url) -> bool {
        let mut path = url.path().to_owned();
        if let Some(query) = url.query() {
            path = format!("{path}?{query}");
        }
        let best = self
            .rules
            .iter()
            .filter(|(_, pattern)| matches(pattern, &path))
            .max_by_key(|(allow, pattern)| (pattern.len(), *allow));
        best.is_none_or(|(allow, _)| *allow)
    }
}

/// A robots.txt pattern: `*` matches any run of characters, a final `$`
/// anchors the end; otherwise a prefix match.
fn matches(pattern: &str, path: &str) -> bool {
    let (pattern, anchored) = match pattern.strip_suffix('$') {
        Some(stripped) => (stripped, true),
        None => (pattern, false),
    };
    let pieces: Vec<&str> = pattern.split('*').collect();
    let mut rest = path;
    for (i, piece) in pieces.iter().enumerate() {
        if i == 0 {
            let Some(after) = rest.strip_prefix(piece) else {
                return false;
            };
            rest = after;
        } else if i == pieces.len() - 1 && anchored {
            return rest.ends_with(piece);
        } else {
            let Some(at) = rest.find(piece) else {
                return false;
            };
            rest = &rest[at + piece.len()..];
        }
    }
    !anchored || rest.is_empty()
}

/// Where a URL's robots.txt is.
pub fn robots_url(url: &Url) -> Url {
    let mut robots = url.clone();
    robots.set_path("/robots.txt");
    robots.set_query(None);
    robots.set_fragment(None);
    robots
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(path: &str) -> Url {
        Url::parse(&format!("http://site.test{path}")).unwrap()
    }

    #[test]
    fn the_star_group_applies_to_everyone() {
        let robots = Robots::parse("User-agent: *\nDisallow: /private\n", "agentd");
        assert!(!robots.allows(&url("/private/page")));
        assert!(robots.allows(&url("/public")));
    }

    #[test]
    fn a_group_naming_the_agent_replaces_the_star_group() {
        let text = "User-agent: *\nDisallow: /\n\nUser-agent: agentd\nDisallow: /no\n";
        let robots = Robots::parse(text, "agentd/0.1");
        assert!(robots.allows(&url("/yes")));
        assert!(!robots.allows(&url("/no")));
    }

    #[test]
    fn the_longest_rule_wins_and_allow_wins_ties() {
        let text = "User-agent: *\nDisallow: /docs\nAllow: /docs/public\nDisallow: /a\nAllow: /a\n";
        let robots = Robots::parse(text, "agentd");
        assert!(!robots.allows(&url("/docs/secret")));
        assert!(robots.allows(&url("/docs/public/x")));
        assert!(robots.allows(&url("/a")));
    }

    #[test]
    fn wildcards_and_anchors() {
        let robots = Robots::parse("User-agent: *\nDisallow: /*.pdf$\nDisallow: /tmp*/x\n", "a");
        assert!(!robots.allows(&url("/files/report.pdf")));
        assert!(robots.allows(&url("/files/report.pdf.html")));
        assert!(!robots.allows(&url("/tmp123/x")));
    }

    #[test]
    fn an_empty_disallow_allows_everything() {
        let robots = Robots::parse("User-agent: *\nDisallow:\n", "agentd");
        assert!(robots.allows(&url("/anything")));
    }

    #[test]
    fn the_robots_url_is_at_the_root() {
        assert_eq!(
            robots_url(&url("/a/b?c=d#e")).as_str(),
            "http://site.test/robots.txt"
        );
    }
}
