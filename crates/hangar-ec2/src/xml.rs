//! A small XML writer for EC2 responses. EC2 responses are flat, known
//! shapes; writing them directly keeps the hot path allocation-light and the
//! output byte-for-byte predictable for golden tests. Escaping is quick-xml's.

pub const NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}

pub struct XmlWriter {
    out: String,
}

impl XmlWriter {
    /// Starts `<{action}Response xmlns="..."><requestId>..</requestId>`.
    pub fn response(action: &str, request_id: &str) -> Self {
        let mut out = String::with_capacity(512);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<");
        out.push_str(action);
        out.push_str("Response xmlns=\"");
        out.push_str(NAMESPACE);
        out.push_str("\"><requestId>");
        out.push_str(&escape(request_id));
        out.push_str("</requestId>");
        Self { out }
    }

    pub fn open(&mut self, name: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    pub fn text(&mut self, name: &str, value: &str) -> &mut Self {
        self.open(name);
        self.out.push_str(&escape(value));
        self.close(name)
    }

    pub fn opt_text(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.text(name, value);
        }
        self
    }

    pub fn bool(&mut self, name: &str, value: bool) -> &mut Self {
        self.text(name, if value { "true" } else { "false" })
    }

    pub fn opt_bool(&mut self, name: &str, value: Option<bool>) -> &mut Self {
        if let Some(value) = value {
            self.bool(name, value);
        }
        self
    }

    pub fn opt_int(&mut self, name: &str, value: Option<i64>) -> &mut Self {
        if let Some(value) = value {
            self.text(name, &value.to_string());
        }
        self
    }

    /// `<name><item>..</item>...</name>`, or `<name/>` when empty.
    pub fn list<T>(
        &mut self,
        name: &str,
        items: &[T],
        mut item: impl FnMut(&mut Self, &T),
    ) -> &mut Self {
        if items.is_empty() {
            self.out.push('<');
            self.out.push_str(name);
            self.out.push_str("/>");
            return self;
        }
        self.open(name);
        for value in items {
            self.open("item");
            item(self, value);
            self.close("item");
        }
        self.close(name)
    }

    /// `<name><value>..</value></name>`: EC2's AttributeValue wrapper.
    pub fn attribute_value(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        self.open(name);
        if let Some(value) = value {
            self.text("value", value);
        }
        self.close(name)
    }

    pub fn finish(mut self, action: &str) -> String {
        self.out.push_str("</");
        self.out.push_str(action);
        self.out.push_str("Response>");
        self.out
    }
}
